// One client through a server restart: it must see its connection drop and
// reconnect by itself to the server started next on the same address.
//
// Usage: node restart.mjs URL websocket|upgrade

import { io } from "socket.io-client";
import { giveUpAfter, report } from "./observe.mjs";

giveUpAfter(40);
const [url, mode] = process.argv.slice(2);
const transports = mode === "websocket" ? ["websocket"] : ["polling", "websocket"];
const socket = io(url, {
  transports,
  auth: { user: "rita", name: "Rita" },
  reconnectionDelay: 200,
  reconnectionDelayMax: 500,
});

let connections = 0;
socket.on("connect", () => {
  connections += 1;
  report(connections === 1 ? "connected" : "reconnected", { id: socket.id });
  if (connections === 2) {
    socket.close();
    report("done");
    process.exit(0);
  }
});
socket.on("disconnect", (reason) => report("disconnected", { reason }));
