"""The flags of each command: one module per command holding its config dataclass and ``COMMAND_CONFIG``.

A field of a config is a flag (``options.option``); the command line builds its parser, its
``--help`` and the flag reference (docs/flags.md) from these classes alone. They import only
the torch-free foundation (options, choices, model_config, ...), so ``sentiment-discovery
--help`` starts without torch, NumPy or scikit-learn; the command's run, which imports those
at its top, is its recipe (``sentiment_discovery.recipes.<command>``), imported only to run it.
"""
