"""The foundation every other layer stands on, importable without torch or NumPy: the one
user-facing exception, the package's messages, files written whole, text preparation, where
things live, the flags machinery and the values flags choose among, the architecture settings,
memory and core counts, figures."""
