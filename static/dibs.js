/*
 * dibs.js: the browser client of Dibs, on top of the official Socket.IO client.
 *
 *   const dibs = Dibs.connect("", { user: "alice", name: "Alice" });
 *   dibs.onPresence((presence) => draw(presence));
 *   await dibs.visit("booking:309208537");
 *   await dibs.claim("rebook");
 *
 * Every request returns a Promise of the server's acknowledgement; a refusal
 * rejects with a DibsError whose `code` is the server's error code. After a
 * dropped connection the Socket.IO client reconnects by itself, and this client
 * then visits its page again and renews its subscriptions before sending
 * anything new; the server's grace period keeps the user's presence and dibs
 * meanwhile. Needs `io` from /vendor/socket.io.min.js, or `options.io`.
 */
(function (root, factory) {
  "use strict";
  if (typeof module === "object" && module.exports) {
    module.exports = factory(root);
  } else {
    root.Dibs = factory(root);
  }
})(typeof self !== "undefined" ? self : this, function (root) {
  "use strict";

  const DEFAULT_TIMEOUT_MS = 10000;
  const MONITOR_NAMESPACE = "/monitor";
  // A view of a page older than this behind the newest news of it is stale
  // (monitors hear each process separately); tombstones older than that go.
  const TOMBSTONES = 1000;

  /** A request the server refused: `code` is stable, `message` is for people. */
  class DibsError extends Error {
    constructor(reply) {
      const body = reply && typeof reply === "object" ? reply : {};
      super(body.message || "request failed");
      this.name = "DibsError";
      this.code = body.error || "error";
      this.claim = body.claim || null;
      this.reply = body;
    }
  }

  function deferred() {
    const gate = { settled: false };
    gate.promise = new Promise((resolve, reject) => {
      gate.resolve = (value) => { gate.settled = true; resolve(value); };
      gate.reject = (error) => { gate.settled = true; reject(error); };
    });
    // A client closed before it ever connected must not raise an unhandled
    // rejection for nobody.
    gate.promise.catch(() => {});
    return gate;
  }

  function findIo(options) {
    const io = options.io || root.io;
    if (typeof io !== "function") {
      throw new Error(
        "dibs.js needs the Socket.IO client: load /vendor/socket.io.min.js " +
        "before it, or pass { io } in the options"
      );
    }
    return io;
  }

  function trimUrl(url) {
    return (url || "").replace(/\/+$/, "");
  }

  // The user a token speaks for, to tell "mine" from "theirs" on screen only:
  // the server verifies the token, this merely reads it.
  function userOfToken(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part)).sub || null;
    } catch (error) {
      return null;
    }
  }

  /** Listeners by event name; a failing listener does not stop the others. */
  class Listeners {
    constructor() {
      this.byEvent = new Map();
    }

    add(event, fn) {
      if (typeof fn !== "function") throw new TypeError(event + " needs a function");
      if (!this.byEvent.has(event)) this.byEvent.set(event, new Set());
      this.byEvent.get(event).add(fn);
      return () => this.byEvent.get(event).delete(fn);
    }

    fire(event, value) {
      for (const fn of this.byEvent.get(event) || []) {
        try {
          fn(value);
        } catch (error) {
          console.error("dibs.js: a " + event + " listener failed", error);
        }
      }
    }
  }

  /** Send one event and resolve with its acknowledgement, or reject. */
  function request(socket, timeout, event, data) {
    return socket.timeout(timeout).emitWithAck(event, data).then((reply) => {
      if (reply && reply.ok) return reply;
      throw new DibsError(reply);
    });
  }

  /** A connection to Dibs for one tab: its page, its state, its subscriptions. */
  class DibsClient {
    constructor(url, who, options) {
      const io = findIo(options);
      this.user = who.token ? null : who.user || null;
      const auth = who.token
        ? (send) => this.fetchToken(who.token).then((token) => send({ token }))
        : { user: who.user, name: who.name || who.user };
      this.page = null;
      this.pageKey = null;
      this.state = "viewing";
      this.presence = null;
      this.topics = new Set();
      this.status = "connecting";
      this.timeout = options.timeout || DEFAULT_TIMEOUT_MS;
      this.listeners = new Listeners();
      this.ready = deferred();
      this.socket = io(trimUrl(url) || undefined, {
        auth,
        transports: ["websocket"],
        ...options.socket,
      });
      this.socket.on("connect", () => this.restore());
      this.socket.on("disconnect", (reason) => this.lost(reason));
      this.socket.on("connect_error", (error) => this.refused(error));
      this.socket.on("presence", (presence) => this.takePresence(presence));
      this.socket.on("notify", (notice) => this.listeners.fire("notify", notice));
      this.socket.on("error", (reply) => this.listeners.fire("error", new DibsError(reply)));
    }

    /** Go to `page` (a URL or a key) in `state`; resolves with its presence. */
    visit(page, state) {
      this.page = page;
      if (state) this.state = state;
      return this.send("visit", { page, state: this.state }).then((reply) => {
        this.entered(reply);
        return reply.presence;
      });
    }

    /** Leave the current page: colleagues see you gone at once. */
    leave() {
      this.page = null;
      this.pageKey = null;
      this.takePresence(null);
      return this.send("leave", {});
    }

    /** Tell the page you are `editing`, `viewing` or `idle`. */
    setState(state) {
      this.state = state;
      if (this.page === null) return Promise.resolve({ ok: true });
      return this.send("state", { state });
    }

    /** Call dibs on `action`; resolves with the claim, rejects `taken` with `.claim`. */
    claim(action) {
      return this.send("claim", { action }).then((reply) => reply.claim);
    }

    /** Release your dibs on `action`. */
    release(action) {
      return this.send("release", { action });
    }

    /** Receive notifications published to `topic`. */
    subscribe(topic) {
      this.topics.add(topic);
      return this.send("subscribe", { topic }).catch((error) => {
        if (error instanceof DibsError) this.topics.delete(topic);
        throw error;
      });
    }

    /** Stop receiving notifications of `topic`. */
    unsubscribe(topic) {
      this.topics.delete(topic);
      return this.send("unsubscribe", { topic });
    }

    /** Call `fn(presence)` on every change of the page (null after leaving). */
    onPresence(fn) {
      const off = this.listeners.add("presence", fn);
      if (this.presence) fn(this.presence);
      return off;
    }

    /** Call `fn({topic, event, data, at})` for every notification received. */
    onNotify(fn) {
      return this.listeners.add("notify", fn);
    }

    /** Call `fn({status, detail})`; status: connected, disconnected, refused, closed. */
    onStatus(fn) {
      return this.listeners.add("status", fn);
    }

    /** Call `fn(dibsError)` for failures nobody awaits (e.g. while restoring). */
    onError(fn) {
      return this.listeners.add("error", fn);
    }

    /** Disconnect for good; the server ends presence after its grace period. */
    close() {
      this.socket.disconnect();
      this.ready.reject(new DibsError({ error: "closed", message: "client closed" }));
      this.setStatus("closed");
    }

    // Requests wait until the connection is up and the page is restored, so
    // nothing reaches the server of a new connection before its visit.
    send(event, data) {
      return this.ready.promise.then(() =>
        request(this.socket, this.timeout, event, data));
    }

    async restore() {
      try {
        if (this.page !== null) {
          const page = { page: this.page, state: this.state };
          this.entered(await request(this.socket, this.timeout, "visit", page));
        }
        for (const topic of this.topics) {
          await request(this.socket, this.timeout, "subscribe", { topic });
        }
      } catch (error) {
        this.listeners.fire("error", error);
      }
      this.ready.resolve();
      this.setStatus("connected");
    }

    // A token may be a string, or a function returning one (or a Promise of
    // one), asked again at every connection so that an expiring token can be
    // replaced before a reconnection presents it.
    fetchToken(source) {
      const pending = typeof source === "function" ? source() : source;
      return Promise.resolve(pending).then(
        (token) => {
          this.user = userOfToken(token);
          return token;
        },
        (error) => {
          console.error("dibs.js: the token function failed", error);
          return "";
        },
      );
    }

    lost(reason) {
      if (this.ready.settled && this.status !== "closed") this.ready = deferred();
      if (this.status !== "closed") this.setStatus("disconnected", reason);
    }

    refused(error) {
      // A refusal by the server (e.g. a bad token) is final: the Socket.IO
      // client does not retry it, so waiting requests fail now. Network
      // failures keep retrying.
      if (this.socket.active) {
        this.setStatus("disconnected", error.message);
        return;
      }
      const reply = { error: error.message, message: "connection refused: " + error.message };
      this.ready.reject(new DibsError(reply));
      this.setStatus("refused", error.message);
    }

    entered(reply) {
      this.pageKey = reply.page;
      this.takePresence(reply.presence);
    }

    takePresence(presence) {
      // Presence of a page this tab already left can still be on its way,
      // and a visit's reply can arrive after a newer presence event.
      if (presence !== null && presence.page !== this.pageKey) return;
      const shown = this.presence;
      if (presence && shown && shown.page === presence.page
          && presence.version < shown.version) return;
      this.presence = presence;
      this.listeners.fire("presence", presence);
    }

    setStatus(status, detail) {
      this.status = status;
      this.listeners.fire("status", { status, detail: detail || null });
    }
  }

  /**
   * The monitoring board's feed: every page with viewers, kept up to date.
   * `pages` maps each page key to its presence; `onPages(fn)` hears
   * `{reset, changed, gone}` after each snapshot or batch is applied.
   */
  class MonitorClient {
    constructor(url, key, options) {
      const io = findIo(options);
      this.pages = new Map();
      this.stamps = new Map();
      this.status = "connecting";
      this.timeout = options.timeout || DEFAULT_TIMEOUT_MS;
      this.listeners = new Listeners();
      this.socket = io(trimUrl(url) + MONITOR_NAMESPACE, {
        auth: { monitor: key || "" },
        transports: ["websocket"],
        ...options.socket,
      });
      this.socket.on("connect", () => this.resync());
      this.socket.on("disconnect", (reason) => this.setStatus("disconnected", reason));
      this.socket.on("connect_error", (error) => {
        this.setStatus(this.socket.active ? "disconnected" : "refused", error.message);
      });
      this.socket.on("pages", (delta) => this.applyDelta(delta));
    }

    /** Call `fn({reset, changed: [presence], gone: [key]})` after every update. */
    onPages(fn) {
      return this.listeners.add("pages", fn);
    }

    /** Call `fn({status, detail})` when the connection changes. */
    onStatus(fn) {
      return this.listeners.add("status", fn);
    }

    /** Disconnect for good. */
    close() {
      this.socket.disconnect();
      this.setStatus("closed");
    }

    resync() {
      // "connected" only once the snapshot is in: until then the board is
      // not whole.
      request(this.socket, this.timeout, "snapshot", {}).then((reply) => {
        this.pages.clear();
        this.stamps.clear();
        for (const presence of reply.pages) {
          this.pages.set(presence.page, presence);
          this.stamps.set(presence.page, presence.version);
        }
        this.listeners.fire("pages", { reset: true, changed: reply.pages, gone: [] });
        this.setStatus("connected");
      }).catch((error) => this.setStatus("error", error.message));
    }

    applyDelta(delta) {
      const changed = [];
      const gone = [];
      for (const entry of delta.changed) {
        if (!this.isNews(entry.page, entry.version)) continue;
        this.pages.set(entry.page, entry);
        changed.push(entry);
      }
      for (const entry of delta.gone) {
        if (!this.isNews(entry.page, entry.version)) continue;
        this.pages.delete(entry.page);
        gone.push(entry.page);
      }
      this.forgetOldStamps();
      this.listeners.fire("pages", { reset: false, changed, gone });
    }

    isNews(page, version) {
      // Views of a page only ever get newer versions: one older than the
      // view shown is a late batch from another process.
      const known = this.stamps.get(page);
      if (known !== undefined && version < known) return false;
      this.stamps.set(page, version);
      return true;
    }

    forgetOldStamps() {
      // Versions of pages gone from the board are kept a while to refuse
      // their late views, but not without bound.
      let spare = this.stamps.size - this.pages.size - TOMBSTONES;
      for (const page of this.stamps.keys()) {
        if (spare <= 0) break;
        if (!this.pages.has(page)) {
          this.stamps.delete(page);
          spare -= 1;
        }
      }
    }

    setStatus(status, detail) {
      this.status = status;
      this.listeners.fire("status", { status, detail: detail || null });
    }
  }

  /** Connect to Dibs at `url` ("" for this site) as `{user, name}` or `{token}`. */
  function connect(url, who, options) {
    return new DibsClient(url, who || {}, options || {});
  }

  /** Watch every page of Dibs at `url` with the API key `key` (monitoring board). */
  function watch(url, key, options) {
    return new MonitorClient(url, key, options || {});
  }

  return { connect, watch, DibsError };
});
