"""The HPM-KD components. Each does one job and knows nothing of a run: the engine
(:mod:`hpmkd.engine`) calls them with plain arguments and records what they decided.

- :mod:`~hpmkd.components.config_manager` — ``AdaptiveConfigurationManager``: ranks and keeps
  up to ``max_configs`` student configurations.
- :mod:`~hpmkd.components.memory` — ``SharedOptimizationMemory``: past runs, warm starts.
- :mod:`~hpmkd.components.cache` — ``IntelligentCache``: diskcache memoization.
- :mod:`~hpmkd.components.chain` — ``ProgressiveDistillationChain``.
- :mod:`~hpmkd.components.temperature` — ``MetaTemperatureScheduler``.
- :mod:`~hpmkd.components.multi_teacher` — ``AttentionWeightedMultiTeacher``.
- :mod:`~hpmkd.components.racing` — paired-bootstrap racing of configurations.
"""
