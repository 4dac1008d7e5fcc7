// Old clients speaking the legacy protocol next to a modern one: PAGE_VISIT,
// PAGEVISITORINFO_UPDATE keyed by each client's own href, and a disconnect
// that removes the user once the grace period is over.
//
// Usage: node legacy.mjs URL PATH websocket|upgrade HREF MODERN_PAGE FRAGMENT_HREF
// where the three pages are the same page written three ways.

import { Client, connectionArgs, giveUpAfter, report, users } from "./observe.mjs";

giveUpAfter(25);
const { url, options, rest } = connectionArgs();
const [href, modernPage, fragmentHref] = rest;

// Old clients send no auth: they name their user in every PAGE_VISIT.
const lena = new Client("lena", url, options);
const leo = new Client("leo", url, options);
const zoe = new Client("zoe", url, options);
const mia = new Client("mia", url, { ...options, auth: { user: "mia", name: "Mia" } });
await Promise.all([lena.connected(), leo.connected(), zoe.connected(), mia.connected()]);

const UPDATE = "PAGEVISITORINFO_UPDATE";
const visitors = (update, key) => Object.keys(update[key] ?? {}).sort().join(",");

lena.socket.emit("PAGE_VISIT", href, "lena", Date.now());
await lena.waitFor("lena_alone", UPDATE, (update) => visitors(update, href) === "lena");

leo.socket.emit("PAGE_VISIT", href, "leo", Date.now());
await Promise.all([
  lena.waitFor("lena_sees_leo", UPDATE, (update) => visitors(update, href) === "lena,leo"),
  leo.waitFor("leo_sees_lena", UPDATE, (update) => visitors(update, href) === "lena,leo"),
]);

await mia.call("visit", { page: modernPage });
await lena.waitFor("lena_sees_mia", UPDATE, (update) => visitors(update, href) === "Mia,lena,leo");

zoe.socket.emit("PAGE_VISIT", fragmentHref, "zoe", Date.now());
await zoe.waitFor("zoe_sees_all", UPDATE, (update) => visitors(update, fragmentHref) !== "");
await Promise.all([
  lena.waitFor("lena_sees_zoe", UPDATE, (update) => visitors(update, href).includes("zoe")),
  mia.waitFor("mia_sees_zoe", "presence", (presence) => users(presence).includes("zoe")),
]);

const leftAt = Date.now();
leo.close();
await lena.waitFor("leo_gone", UPDATE, (update) => !visitors(update, href).includes("leo"));
report("leo_removed_after", { ms: Date.now() - leftAt });
await mia.waitFor("mia_sees_leo_gone", "presence", (presence) => !users(presence).includes("leo"));

await Promise.all([lena.upgraded(), mia.upgraded()]);
for (const client of [lena, zoe, mia]) client.close();
report("done");
process.exit(0);
