"""Shared parts with the notes' names and no algorithm logic: ``returns``, ``losses``, ``distributions``,
``networks``, ``spaces`` (how an observation is stored), ``encoders`` (networks chosen from the observation space),
``normalization`` (running observation statistics on the model side), ``actor_critic``, ``buffers``, ``rollout``
(on-policy collection), ``ledger`` (finished episodes), ``schedules``, ``running_stats``, ``diagnostics``,
``seeding``, ``logger``, ``checkpoint``, and for the DQN family ``targets`` (``dqn_target``,
``double_dqn_target``), ``distributional`` (C51's projection, QR-DQN's quantile Huber loss) and ``q_heads`` (noisy
layers, the dueling head, ``q_network``). Each is a module of pure functions or small classes, unit-tested against
hand computations."""
