"""The plug-in set: which plug-ins there are, whether they may run, and building them.

One pipeline builds every version of every plug-in (build.py: snapshot -> folder rule ->
trust check -> compile -> link -> pool), whoever asks: the daemon's ``Reconciler``
(reconciler.py, fed by watcher.py), ``wasmd.Loader`` (wasmd/library.py), ``wasmd.load``
(wasmd/loading.py, which checks a path with the caller's rights through by_path.py and
access.py) and ``wasmd check`` (check.py). The running set is one ``PluginTable``
(registry.py). The trust check (trust.py) reads the pins, the signatures (signature.py) and
the pin files ``wasmd pull`` writes (trust_pins.py).

What a plug-in *is* (its name, its folder rule, its manifest: wasmd/discovery.py,
wasmd/manifest.py) lives one floor down, beside the runtime that reads it. This package
imports the runtime and never the network layer; nothing here is imported eagerly.
"""
