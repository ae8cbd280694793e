"""``sentiment-discovery serve``: a live page and a JSON API over a model loaded once (docs/serve.md).

Loads the model and classifier (the ones shipped with the package unless ``--model`` or
``--classifier`` name others) and serves on 127.0.0.1 until interrupted. Needs the
``serve`` extra: ``pip install 'sentiment-discovery[serve]'``.
"""

import ipaddress
import signal
import socket
import time

from ..configs.serve import ServeConfig
from ..foundation import log
from ..foundation.errors import UserError
from ..foundation.options import check_options
from ..runtime import select_device
from ..serve.service import InferenceService, Limits

INSTALL_EXTRA = "pip install 'sentiment-discovery[serve]'"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, bound before the model loads, so a port in use fails at once."""
    if not 0 <= port <= 65535:
        raise UserError(f"--port {port} is not a port; give 0..65535 (0: any free one)")
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family)
    except OSError as error:
        raise UserError(f"cannot listen on {host}:{port} ({error.strerror}); pass another --port or --host") from None
    sock.set_inheritable(True)
    return sock


def run(config: ServeConfig) -> int | None:
    try:
        # lazy: the serve extra (uvicorn, FastAPI) is optional; without it, one line saying how to install it
        import uvicorn

        from ..serve.app import create_app

        _Server = _server_class()
    except ImportError as error:
        raise UserError(f"serve needs the serve extra ({error.name} is missing): {INSTALL_EXTRA}") from None
    check_options(config)
    limits = Limits(
        text_chars=config.max_text_chars, texts=config.max_texts, new_bytes=config.max_new_bytes,
        batch_texts=config.max_batch_texts,
    )
    sock = listen(config.host, config.port)
    try:
        started = time.perf_counter()
        service = InferenceService.load(
            config.model, config.classifier, unit=config.unit, layer=config.layer,
            device=str(select_device(config.cuda)), limits=limits, batch_size=config.batch_size,
            featurize_precision=config.precision,
        )
        loaded = time.perf_counter() - started
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        info = service.info()
        log.info(
            f"serving {info['model']['name']} ({info['model']['rnn_size']} units, unit {info['unit']['unit']} shown"
            f"{'' if service.classifier else ', no classifier'}), loaded in {loaded:.1f} s, "
            f"on http://{shown}:{port}/ ; Ctrl-C stops"
        )
        if not _is_loopback(config.host):
            log.warning(f"{config.host} is not a loopback address: anyone who can reach it can use this "
                        "server, which has no authentication")
        server = _Server(uvicorn.Config(create_app(service), log_level="warning", access_log=False))
        server.run(sockets=[sock])
    finally:
        sock.close()
    if server.stopped_by == signal.SIGINT:  # uvicorn shut down gracefully: Ctrl-C is then 130, as everywhere
        raise KeyboardInterrupt
    if server.stopped_by is not None:
        return 128 + server.stopped_by
    return None


def _server_class():
    import uvicorn  # lazy: the serve extra is optional

    class Server(uvicorn.Server):
        """uvicorn's server, remembering the signal that stopped it (it exits its loop normally)."""

        stopped_by: int | None = None

        def handle_exit(self, sig, frame) -> None:
            if self.stopped_by is None:
                self.stopped_by = int(sig)
            super().handle_exit(sig, frame)

    return Server
