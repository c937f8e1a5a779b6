"""Shared parts with the notes' names and no algorithm logic: ``returns``, ``losses``, ``distributions``,
``networks``, ``spaces`` (how an observation is stored), ``encoders`` (networks chosen from the observation space),
``normalization`` (running observation statistics on the model side), ``actor_critic``, ``buffers``, ``rollout``
(on-policy collection), ``ledger`` (finished episodes), ``schedules``, ``running_stats``, ``diagnostics``,
``seeding``, ``logger``, ``checkpoint``. Each is a module of pure functions or small classes, unit-tested against
hand computations."""
