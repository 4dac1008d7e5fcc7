// Connect with the token given, and report whether the server let us in.
//
// Usage: node token.mjs URL TOKEN

import { io } from "socket.io-client";
import { giveUpAfter, report } from "./observe.mjs";

giveUpAfter(20);
const [url, token] = process.argv.slice(2);
const socket = io(url, { transports: ["websocket"], reconnection: false, auth: { token } });

socket.on("connect", () => {
  socket.emit("visit", { page: "booking:node" }, (reply) => {
    report("visited", { reply });
    socket.close();
    report("done");
    process.exit(0);
  });
});
socket.on("connect_error", (error) => {
  report("refused", { message: error.message });
  report("done");
  process.exit(0);
});
