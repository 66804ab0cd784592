// The official Node socket.io 4.8 server (bench/node's pinned install) with the demo events `ferrio bench
// fanout` needs (join, chat), with or without connection state recovery, for bench/recovery.sh.
// Usage: node bench/recovery.mjs PORT on|off; prints "listening on http://ADDR" once bound.
import { createServer } from "node:http";
import { createRequire } from "node:module";

// socket.io is installed under bench/node (npm ci there).
const require = createRequire(new URL("./node/package.json", import.meta.url));
const { Server } = require("socket.io");

const port = Number(process.argv[2] ?? 0);
const recovery = process.argv[3] === "on";
const httpServer = createServer((req, res) => {
  res.writeHead(404);
  res.end("Not Found");
});
// The official defaults: a 2-minute window, middlewares skipped on a restore.
const io = new Server(httpServer, {
  serveClient: false,
  ...(recovery ? { connectionStateRecovery: {} } : {}),
});

io.on("connection", (socket) => {
  socket.on("join", (room, ack) => {
    const ok = typeof room === "string";
    if (ok) socket.join(room);
    if (typeof ack === "function") ack(ok);
  });
  socket.on("chat", (msg) => {
    if (!msg || typeof msg.text !== "string" || typeof msg.room !== "string") return;
    const out = { from: socket.id, room: msg.room, text: msg.text };
    io.to(msg.room).emit("chat", out);
    // The sender sees its own message even when it is not in the room.
    if (!socket.rooms.has(msg.room)) socket.emit("chat", out);
  });
});

httpServer.listen(port, "127.0.0.1", () => {
  const a = httpServer.address();
  console.log(`listening on http://${a.address}:${a.port}`);
});
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    io.close();
    process.exit(0);
  });
}
