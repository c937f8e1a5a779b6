"""The off-policy actor-critics for continuous control (003 lecture 9; 004 DDPG): DDPG, TD3, SAC, and SAC for
Discrete actions. Actions live in [-1, 1] inside each algorithm and are scaled to the space's bounds only where they
leave for the env (:func:`thorndike.core.spaces.scale_action`)."""
