"""``sentiment-discovery serve``: the neuron live in a browser, and the model behind a JSON API.

:mod:`.service` does the work (one model, one worker thread, requests batched) and needs
nothing beyond the package; :mod:`.app` puts it on the web with FastAPI (the ``serve`` extra).
"""
