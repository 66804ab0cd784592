// The ferrio demo events (join, leave, chat, echo) on the official Node socket.io server, for bench/run.sh.
// Usage: node server.mjs [PORT]  (default 3000, or $PORT); prints "listening on http://ADDR" once bound.
import { createServer } from "node:http";
import { Server } from "socket.io";

const port = Number(process.argv[2] ?? process.env.PORT ?? 3000);
const httpServer = createServer((req, res) => {
  res.writeHead(404);
  res.end("Not Found");
});
// ws is the default engine; it picks up bufferutil by itself when installed.
const io = new Server(httpServer, { serveClient: false });

io.on("connection", (socket) => {
  socket.on("join", (room, ack) => {
    const ok = typeof room === "string";
    if (ok) socket.join(room);
    if (typeof ack === "function") ack(ok);
  });
  socket.on("leave", (room, ack) => {
    const ok = typeof room === "string";
    if (ok) socket.leave(room);
    if (typeof ack === "function") ack(ok);
  });
  socket.on("chat", (msg) => {
    if (!msg || typeof msg.text !== "string") return;
    const room = typeof msg.room === "string" ? msg.room : null;
    const out = { from: socket.id, room, text: msg.text };
    if (room !== null) {
      io.to(room).emit("chat", out);
      // The sender sees its own message even when it is not in the room.
      if (!socket.rooms.has(room)) socket.emit("chat", out);
    } else {
      io.emit("chat", out);
    }
  });
  socket.on("echo", (...args) => {
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
    if (ack) ack(...args);
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
