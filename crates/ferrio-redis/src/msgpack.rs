//! MessagePack for [`Value`](ferrio_proto::value::Value), byte for byte what notepack.io 3.x (the parser
//! of `@socket.io/redis-adapter`) writes, and everything it reads: the codec of `ferrio_proto`, shared
//! with the Socket.IO msgpack parser (see [`ferrio_proto::value::msgpack`]).

pub use ferrio_proto::value::msgpack::{DecodeError, MAX_DEPTH, decode, encode, encode_into};
