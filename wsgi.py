"""Entry point: ``python wsgi.py`` serves Dibs; ``gunicorn wsgi:app`` imports it.

gevent patches the standard library before anything else is imported, so that
every socket and sleep in the process cooperates with the other greenlets.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from dibs import create_app  # noqa: E402
from dibs.logs import configure as configure_logging  # noqa: E402
from dibs.settings import Settings, SettingsError  # noqa: E402

try:
    settings = Settings.from_env()
except SettingsError as error:
    sys.exit(f"dibs: {error}")

configure_logging(settings.log_level, settings.log_format)
try:
    app = create_app(settings)
except SettingsError as error:
    # Such as a Redis unreachable at start.  Status 4 is gunicorn's "app failed
    # to load", on which its master stops instead of booting worker after worker.
    print(f"dibs: {error}", file=sys.stderr)
    sys.exit(4)

if __name__ == "__main__":
    from dibs.server import serve

    serve(app, settings)
