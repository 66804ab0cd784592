// An official socket.io 4.8 server for the Rust client's interop tests
// (crates/ferrio-client/tests/node_interop.rs).
//
//   node socketio-server.mjs --port 0 [--recovery] [--msgpack] [--per-message-deflate] [--ping-interval MS]
//                            [--ping-timeout MS]
//
// Prints exactly `listening on http://127.0.0.1:PORT` once listening, and exits when its stdin closes
// (so that it never outlives the test process that spawned it).
//
// Namespaces `/` and `/custom`, with the events:
//   echo            acks with the same arguments
//   emit-back       emits `echo-back` with the same arguments
//   ask             emitWithAck `question` (same arguments, 2 s timeout) to the client, then emits `answer`
//                   with the ack's arguments (or `answer-error` with the error message)
//   whoami          acks { id, engineId, transport, auth, recovered, nsp }
//   describe        acks a JSON description of the arguments: every Buffer becomes { $binary: hex }
//   make-binary     (hex) emits `made-binary` with that buffer nested in objects and arrays
//   drop-first-ack  counts deliveries per key (the first argument); never acks the first delivery of a
//                   key, acks the following ones with the count
//   deliveries      (prefix) acks { counts: {key: n}, log: [keys in delivery order] } for keys with prefix
//   kill-transport  socket.conn.close(): closes the Engine.IO connection without a Socket.IO DISCONNECT
//   kick            socket.disconnect()
//   join            (room) joins a room, acks true
//   broadcast-room  ({room, event, args}) io.to(room).emit(event, ...args), acks true
//   volatile-burst  (n) socket.volatile.emit("v", i) for i < n
//   disconnect-reason (id) acks the reason the server saw for socket `id` disconnecting (or null)
//   message         socket.send(...args): the same arguments back as a `message`
// With --msgpack: the parser is socket.io-msgpack-parser.
// With --recovery (connectionStateRecovery, maxDisconnectionDuration 10 s, skipMiddlewares):
//   broadcast-later ({event, count, delayMs}) after delayMs, io.emit(event, i) for i < count
import { createServer } from "node:http";
import { Server } from "socket.io";
import msgpackParser from "socket.io-msgpack-parser";

const argv = process.argv.slice(2);
function flag(name) {
  return argv.includes(name);
}
function option(name, fallback) {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : fallback;
}

const port = Number(option("--port", "0"));
const recovery = flag("--recovery");
const pingInterval = Number(option("--ping-interval", "300"));
const pingTimeout = Number(option("--ping-timeout", "200"));

const httpServer = createServer();
const io = new Server(httpServer, {
  pingInterval,
  pingTimeout,
  ...(flag("--msgpack") ? { parser: msgpackParser } : {}),
  ...(flag("--per-message-deflate") ? { perMessageDeflate: true } : {}),
  ...(recovery
    ? { connectionStateRecovery: { maxDisconnectionDuration: 10_000, skipMiddlewares: true } }
    : {}),
});

const deliveries = new Map(); // key -> count
const deliveryLog = []; // keys in delivery order
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

function keyOf(arg) {
  return typeof arg === "string" ? arg : JSON.stringify(arg);
}

function setup(nsp) {
  nsp.on("connection", (socket) => {
    socket.on("disconnect", (reason) => {
      disconnectReasons.set(socket.id, reason);
    });

    socket.on("echo", (...args) => {
      const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
      if (ack) ack(...args);
    });

    socket.on("emit-back", (...args) => {
      if (typeof args[args.length - 1] === "function") args.pop();
      socket.emit("echo-back", ...args);
    });

    socket.on("ask", (...args) => {
      if (typeof args[args.length - 1] === "function") args.pop();
      socket.timeout(2000).emit("question", ...args, (err, ...answer) => {
        if (err) socket.emit("answer-error", String(err && err.message ? err.message : err));
        else socket.emit("answer", ...answer);
      });
    });

    socket.on("whoami", (...args) => {
      const ack = args.pop();
      if (typeof ack !== "function") return;
      ack({
        id: socket.id,
        engineId: socket.conn.id,
        transport: socket.conn.transport.name,
        auth: socket.handshake.auth,
        recovered: socket.recovered,
        nsp: socket.nsp.name,
      });
    });

    socket.on("describe", (...args) => {
      const ack = args.pop();
      if (typeof ack === "function") ack(describe(args));
    });

    socket.on("message", (...args) => {
      socket.send(...args);
    });

    socket.on("make-binary", (hex) => {
      const buf = Buffer.from(String(hex), "hex");
      socket.emit("made-binary", { a: [buf, { b: buf }], c: { d: [[buf]] } }, [buf, "x", { e: buf }]);
    });

    socket.on("drop-first-ack", (...args) => {
      const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
      const key = keyOf(args[0]);
      const count = (deliveries.get(key) ?? 0) + 1;
      deliveries.set(key, count);
      deliveryLog.push(key);
      if (count > 1 && ack) ack(count);
    });

    socket.on("deliveries", (prefix, ack) => {
      if (typeof ack !== "function") return;
      const p = String(prefix ?? "");
      const counts = {};
      for (const [k, v] of deliveries) if (k.startsWith(p)) counts[k] = v;
      ack({ counts, log: deliveryLog.filter((k) => k.startsWith(p)) });
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

    socket.on("volatile-burst", (n) => {
      for (let i = 0; i < Number(n); i++) socket.volatile.emit("v", i);
    });

    socket.on("disconnect-reason", (id, ack) => {
      if (typeof ack === "function") ack(disconnectReasons.get(String(id)) ?? null);
    });

    if (recovery) {
      socket.on("broadcast-later", ({ event, count, delayMs } = {}) => {
        setTimeout(() => {
          for (let i = 0; i < Number(count); i++) io.of(nsp.name).emit(String(event), i);
        }, Number(delayMs ?? 0));
      });
    }
  });
}

setup(io.of("/"));
setup(io.of("/custom"));

httpServer.listen(port, "127.0.0.1", () => {
  const { port: actual } = httpServer.address();
  process.stdout.write(`listening on http://127.0.0.1:${actual}\n`);
});

// Never outlive the parent: it holds our stdin open.
process.stdin.on("end", () => process.exit(0));
process.stdin.on("error", () => process.exit(0));
process.stdin.resume();
process.on("SIGTERM", () => process.exit(0));
