// One modern agent meeting a peer that another program drives: visit a page,
// wait to see the peer arrive, then wait to see the peer leave.
//
// Usage: node peer.mjs URL PATH websocket|upgrade USER PAGE PEER

import { Client, connectionArgs, giveUpAfter, report, users } from "./observe.mjs";

giveUpAfter(30);
const { url, options, rest } = connectionArgs();
const [user, page, peer] = rest;

const agent = new Client(user, url, { ...options, auth: { user, name: user } });
await agent.connected();
await agent.call("visit", { page });
await agent.waitFor("peer_arrived", "presence", (presence) => users(presence).includes(peer));
await agent.upgraded();
await agent.waitFor("peer_left", "presence", (presence) => !users(presence).includes(peer));

agent.close();
report("done");
process.exit(0);
