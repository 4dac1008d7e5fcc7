// What every scenario driver shares: Socket.IO clients that remember what
// they received, waits with a description, and one JSON line per observation
// on stdout.  The Python tests read those lines and make the assertions; a
// driver only waits for things to happen, and gives up on its own in time.

import { io } from "socket.io-client";

let waitingFor = "start";
const clients = [];

// Print one observation as a JSON line.
export function report(step, fields = {}) {
  process.stdout.write(JSON.stringify({ step, ...fields }) + "\n");
}

// Exit with code 2, saying what was awaited, if the scenario is not done in time.
export function giveUpAfter(seconds) {
  const timer = setTimeout(() => {
    report("timeout", { waiting: waitingFor, clients: clients.map(describe) });
    process.exit(2);
  }, seconds * 1000);
  timer.unref();
}

// Describe a client's connection, for a scenario that timed out.
function describe(client) {
  const engine = client.socket.io.engine;
  return {
    client: client.label,
    connected: client.socket.connected,
    engine: engine ? `${engine.readyState} over ${engine.transport?.name}` : "none",
    received: client.received.map((item) => item.event),
  };
}

// Read `url path mode` from the command line into io() options.
export function connectionArgs(argv = process.argv.slice(2)) {
  const [url, path, mode, ...rest] = argv;
  const options = { path: `/${path}` };
  if (mode === "websocket") {
    options.transports = ["websocket"];
  } else if (mode !== "upgrade") {
    throw new Error(`mode must be websocket or upgrade, got ${mode}`);
  }
  return { url, options, rest };
}

// One socket.io-client connection and every event it received, in order.
export class Client {
  constructor(label, url, options) {
    this.label = label;
    this.received = [];
    this.cursor = 0;
    this.waiters = [];
    this.upgrades = [];
    // A connection that does not open within 10 s is a connect_error.
    const defaults = { reconnection: false, forceNew: true, timeout: 10000 };
    this.socket = io(url, { ...defaults, ...options });
    clients.push(this);
    // By the time Socket.IO says "connect" an upgrade may be done already, so
    // the first transport is taken when Engine.IO opens.
    this.socket.io.on("open", () => {
      const engine = this.socket.io.engine;
      this.firstTransport = engine.transport.name;
      engine.on("upgrade", (transport) => this.upgrades.push(transport.name));
    });
    this.socket.onAny((event, ...args) => {
      this.received.push({ event, args });
      this.wake();
    });
  }

  // Resolve once connected (reporting the first transport), reject on refusal.
  connected() {
    waitingFor = "connections";
    return new Promise((resolve, reject) => {
      this.socket.once("connect", () => {
        report("connected", {
          client: this.label,
          id: this.socket.id,
          transport: this.firstTransport,
        });
        resolve(this);
      });
      this.socket.once("connect_error", (error) => {
        report("connect_error", { client: this.label, message: error.message });
        reject(error);
      });
    });
  }

  transport() {
    return this.socket.io.engine.transport.name;
  }

  // Emit with an acknowledgement, report the reply and return it.
  async call(event, ...args) {
    waitingFor = `${this.label}: reply to ${event}`;
    const reply = await this.socket.timeout(10000).emitWithAck(event, ...args);
    report("reply", { client: this.label, event, reply });
    return reply;
  }

  // Wait for the next `event` (after the last one waited for) that passes
  // `accept`; report it under `step` and return its first argument.
  waitFor(step, event, accept = () => true) {
    waitingFor = `${this.label}: ${step}`;
    return new Promise((resolve) => {
      this.waiters.push({ step, event, accept, resolve });
      this.wake();
    });
  }

  wake() {
    for (const waiter of [...this.waiters]) {
      const index = this.received.findIndex(
        (item, at) =>
          at >= this.cursor && item.event === waiter.event && waiter.accept(...item.args),
      );
      if (index < 0) continue;
      this.cursor = index + 1;
      this.waiters.splice(this.waiters.indexOf(waiter), 1);
      const data = this.received[index].args[0];
      report(waiter.step, { client: this.label, event: waiter.event, data });
      waiter.resolve(data);
    }
  }

  // Events received since `mark` (an index into `received`).
  since(mark) {
    return this.received.slice(mark);
  }

  // Resolve once the transport is websocket, upgrading first if need be.
  async upgraded() {
    waitingFor = `${this.label}: upgrade to websocket`;
    const engine = this.socket.io.engine;
    if (engine.transport.name !== "websocket") {
      await new Promise((resolve) => engine.once("upgrade", resolve));
    }
    report("transport", {
      client: this.label,
      first: this.firstTransport,
      upgrades: this.upgrades,
      name: this.transport(),
    });
  }

  close() {
    this.socket.disconnect();
  }
}

// Return the users of a presence payload, in order.
export function users(presence) {
  return presence.viewers.map((viewer) => viewer.user);
}
