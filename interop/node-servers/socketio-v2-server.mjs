// An official socket.io 2.x server (Engine.IO v3, Socket.IO protocol v4) for the Rust client's interop
// tests with the Engine.IO v3 protocol option (crates/ferrio-client/tests/node_v2_interop.rs).
//
//   node socketio-v2-server.mjs --port 0 [--ping-interval MS] [--ping-timeout MS] [--refuse-root]
//
// Prints exactly `listening on http://127.0.0.1:PORT` once listening, and exits when its stdin closes
// (so that it never outlives the test process that spawned it).
//
// Namespaces `/`, `/custom`, and two guarded by a middleware:
//   /guarded        refuses with the error message "not authorized" unless the query has token=ok
//   /guarded-data   always refuses, with err.data = { message: "denied", code: 42 }
// With --refuse-root, a middleware on `/` refuses every connection with "root refused".
// Events (on `/` and `/custom`):
//   echo            acks with the same arguments
//   emit-back       emits `echo-back` with the same arguments
//   ask             emits `question` (same arguments) with an ack callback, then emits `answer` with the
//                   ack's arguments
//   whoami          acks { id, engineId, transport, query, nsp }
//   describe        acks a JSON description of the arguments: every Buffer becomes { $binary: hex }
//   make-binary     (hex) emits `made-binary` with that buffer nested in objects and arrays
//   kill-transport  socket.conn.close(): closes the Engine.IO connection without a Socket.IO DISCONNECT
//   kick            socket.disconnect()
//   join            (room) joins a room, acks true
//   broadcast-room  ({room, event, args}) io.of(nsp).to(room).emit(event, ...args), acks true
//   disconnect-reason (id) acks the reason the server saw for socket `id` disconnecting (or null)
import { createServer } from "node:http";
import createIo from "socket.io-v2";

const argv = process.argv.slice(2);
function option(name, fallback) {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : fallback;
}

const port = Number(option("--port", "0"));
const pingInterval = Number(option("--ping-interval", "300"));
const pingTimeout = Number(option("--ping-timeout", "200"));

const httpServer = createServer();
const io = createIo(httpServer, { pingInterval, pingTimeout });

const disconnectReasons = new Map(); // socket id -> reason

function describe(value) {
  if (Buffer.isBuffer(value)) return { $binary: value.toString("hex") };
  if (value instanceof ArrayBuffer) return { $binary: Buffer.from(value).toString("hex") };
  if (Array.isArray(value)) return value.map(describe);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, describe(v)]));
  }
  return value;
}

function popAck(args) {
  return typeof args[args.length - 1] === "function" ? args.pop() : null;
}

function setup(nsp) {
  nsp.on("connection", (socket) => {
    socket.on("disconnect", (reason) => {
      disconnectReasons.set(socket.id, reason);
    });

    socket.on("echo", (...args) => {
      const ack = popAck(args);
      if (ack) ack(...args);
    });

    socket.on("emit-back", (...args) => {
      popAck(args);
      socket.emit("echo-back", ...args);
    });

    socket.on("ask", (...args) => {
      popAck(args);
      socket.emit("question", ...args, (...answer) => socket.emit("answer", ...answer));
    });

    socket.on("whoami", (...args) => {
      const ack = popAck(args);
      if (!ack) return;
      const { EIO, transport, t, b64, sid, ...query } = socket.handshake.query;
      ack({
        id: socket.id,
        engineId: socket.conn.id,
        transport: socket.conn.transport.name,
        query,
        nsp: socket.nsp.name,
      });
    });

    socket.on("describe", (...args) => {
      const ack = popAck(args);
      if (ack) ack(describe(args));
    });

    socket.on("make-binary", (hex) => {
      const buf = Buffer.from(String(hex), "hex");
      socket.emit("made-binary", { a: [buf, { b: buf }], c: { d: [[buf]] } }, [buf, "x", { e: buf }]);
    });

    socket.on("kill-transport", () => {
      socket.conn.close();
    });

    socket.on("kick", () => {
      socket.disconnect();
    });

    socket.on("join", (room, ack) => {
      socket.join(String(room));
      if (typeof ack === "function") ack(true);
    });

    socket.on("broadcast-room", ({ room, event, args } = {}, ack) => {
      io.of(nsp.name)
        .to(String(room))
        .emit(String(event), ...(Array.isArray(args) ? args : []));
      if (typeof ack === "function") ack(true);
    });

    socket.on("disconnect-reason", (id, ack) => {
      if (typeof ack === "function") ack(disconnectReasons.get(String(id)) ?? null);
    });
  });
}

if (argv.includes("--refuse-root")) {
  io.of("/").use((_socket, next) => next(new Error("root refused")));
}
setup(io.of("/"));
setup(io.of("/custom"));
io.of("/guarded").use((socket, next) => {
  if (socket.handshake.query.token === "ok") next();
  else next(new Error("not authorized"));
});
setup(io.of("/guarded"));
io.of("/guarded-data").use((_socket, next) => {
  const err = new Error("denied");
  err.data = { message: "denied", code: 42 };
  next(err);
});

httpServer.listen(port, "127.0.0.1", () => {
  const { port: actual } = httpServer.address();
  process.stdout.write(`listening on http://127.0.0.1:${actual}\n`);
});

// Never outlive the parent: it holds our stdin open.
process.stdin.on("end", () => process.exit(0));
process.stdin.on("error", () => process.exit(0));
process.stdin.resume();
process.on("SIGTERM", () => process.exit(0));
