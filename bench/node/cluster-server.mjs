// The ferrio demo events (join, leave, chat, echo) on the official Node socket.io server clustered with
// @socket.io/redis-adapter (classic pub/sub), for bench/cluster.sh.
// Usage: node cluster-server.mjs PORT REDIS_URL [KEY]  (PORT 0: any free port; KEY default "socket.io");
// prints "listening on http://ADDR" once connected to Redis and bound.
import { createServer } from "node:http";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";

const port = Number(process.argv[2] ?? process.env.PORT ?? 3000);
const redisUrl = process.argv[3] ?? process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const key = process.argv[4] ?? "socket.io";

const pubClient = createClient({ url: redisUrl });
const subClient = pubClient.duplicate();
for (const c of [pubClient, subClient]) c.on("error", (e) => console.error("redis:", e.message));
try {
  await Promise.all([pubClient.connect(), subClient.connect()]);
} catch (e) {
  console.error(`redis unreachable at ${redisUrl}: ${e.message}`);
  process.exit(1);
}

const httpServer = createServer((req, res) => {
  res.writeHead(404);
  res.end("Not Found");
});
// ws is the default engine; it picks up bufferutil by itself when installed.
const io = new Server(httpServer, { serveClient: false, adapter: createAdapter(pubClient, subClient, { key }) });

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
