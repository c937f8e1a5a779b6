"""Shared parts with the notes' names and no algorithm logic: ``returns``, ``losses``, ``distributions``,
``networks``, ``buffers``, ``schedules``, ``running_stats``, ``diagnostics``, ``seeding``, ``logger``,
``checkpoint``. Each is a module of pure functions or small classes, unit-tested against hand computations."""
