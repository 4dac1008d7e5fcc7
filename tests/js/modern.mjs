// Two agents on one page over the modern protocol: visit, presence, state,
// claim, release, an ack-less failure, leave.
//
// Usage: node modern.mjs URL PATH websocket|upgrade

import { Client, connectionArgs, giveUpAfter, report, users } from "./observe.mjs";

giveUpAfter(25);
const { url, options } = connectionArgs();

const alice = new Client("alice", url, { ...options, auth: { user: "alice", name: "Alice" } });
const bob = new Client("bob", url, { ...options, auth: { user: "bob", name: "Bob" } });
await Promise.all([alice.connected(), bob.connected()]);

// The same page, written two ways that differ only in what does not matter.
await alice.call("visit", { page: "https://ops.example.com/booking/42?b=2&a=1#history" });
await bob.call("visit", { page: "https://ops.example.com/booking/42?a=1&b=2&utm_medium=x" });
const both = (presence) => users(presence).length === 2;
await Promise.all([
  alice.waitFor("both_present", "presence", both),
  bob.waitFor("both_present", "presence", both),
]);

await bob.call("state", { state: "editing" });
await alice.waitFor("bob_editing", "presence", (presence) =>
  presence.viewers.some((viewer) => viewer.user === "bob" && viewer.state === "editing"),
);

await alice.call("claim", { action: "refund" });
await bob.waitFor("claimed", "presence", (presence) => presence.claims.length === 1);
await bob.call("claim", { action: "refund" });
await alice.call("release", { action: "refund" });
await bob.waitFor("released", "presence", (presence) => presence.claims.length === 0);

// No acknowledgement asked for: the failure must come back as an `error` event.
bob.socket.emit("claim", { action: "not a valid action!" });
await bob.waitFor("error_invalid", "error");
bob.socket.emit("release", { action: "refund" });
await bob.waitFor("error_not_holder", "error");

await bob.call("leave", {});
await alice.waitFor("bob_left", "presence", (presence) => users(presence).length === 1);

// Once bob has left, a change on the page must not reach him.  Anything sent
// to him about it would come before the news of the page he goes to next.
const mark = bob.received.length;
await alice.call("state", { state: "idle" });
await alice.waitFor("alice_idle", "presence", (presence) => presence.viewers[0].state === "idle");
await bob.call("visit", { page: "booking:elsewhere" });
await bob.waitFor("bob_elsewhere", "presence", (presence) => presence.page === "booking:elsewhere");
const told = bob.since(mark).map(({ event, args }) => `${event} ${args[0]?.page}`);
report("after_leave", { client: "bob", events: told });

await Promise.all([alice.upgraded(), bob.upgraded()]);
alice.close();
bob.close();
report("done");
process.exit(0);
