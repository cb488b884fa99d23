"""Option "knobs only": the engine's own app (``stream.app.create_app``, unchanged) with Faust settings.

Nothing in the hot path changes; only what Faust lets one configure, each from an environment
variable when it is set: the event loop (``BENCH_LOOP=uvloop``), records per fetch
(``BENCH_MAX_POLL_RECORDS`` → ``broker_max_poll_records``), producer linger
(``BENCH_LINGER_MS``), the stream buffer (``BENCH_STREAM_BUFFER`` → ``stream_buffer_maxsize``) and
table standby replicas (``BENCH_STANDBY_REPLICAS``), and the GIL switch interval
(``BENCH_SWITCH_INTERVAL``: Faust runs the aiokafka consumer in a thread). Settings go to the app's
``conf`` before the worker starts.

    BENCH_LOOP=uvloop BENCH_MAX_POLL_RECORDS=2000 python -m bench.prototypes.engine_knobs worker
"""

from __future__ import annotations

import os
import sys

from bench.common import bench_settings
from stream.app import create_app

#: environment variable → (Faust setting, type)
KNOBS = {
    "BENCH_MAX_POLL_RECORDS": ("broker_max_poll_records", int),
    "BENCH_LINGER_MS": ("producer_linger_ms", int),
    "BENCH_STREAM_BUFFER": ("stream_buffer_maxsize", int),
    "BENCH_STANDBY_REPLICAS": ("table_standby_replicas", int),
}


def main() -> int:
    faust_args = [a for a in sys.argv[1:] if a != "worker"]
    if not any(a.startswith(("-l", "--loglevel")) for a in faust_args):
        faust_args = ["--loglevel", "warn", *faust_args]
    app = create_app(bench_settings(), log_level="warn")
    for variable, (setting, kind) in KNOBS.items():
        if variable in os.environ:
            setattr(app.conf, setting, kind(os.environ[variable]))
    if "BENCH_SWITCH_INTERVAL" in os.environ:
        sys.setswitchinterval(float(os.environ["BENCH_SWITCH_INTERVAL"]))
    loop = os.environ.get("BENCH_LOOP", "")
    sys.argv = ["engine_knobs", *(["--loop", loop] if loop else []), "worker", *faust_args]
    app.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
