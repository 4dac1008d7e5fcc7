"""gunicorn's settings for Dibs, read from the checkout by ``gunicorn wsgi:app``.

Only one hook: when a worker is told to stop, Dibs closes its connections at
once, so that clients reconnect (to the next worker) without holding the
worker for gunicorn's whole graceful timeout.
"""


def post_worker_init(worker):
    # Imported here: the master process never loads the app or gevent.
    import gevent

    from dibs.server import close_when_worker_stops

    gevent.spawn(close_when_worker_stops, worker)
