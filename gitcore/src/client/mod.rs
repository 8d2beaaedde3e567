//! Git's client side, for what Orbit pushes to other servers (push mirrors): [`send_pack`].

pub mod send_pack;
