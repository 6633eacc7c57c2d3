// Socket, netlink and sock_diag constants for x86_64 (linux/socket.h, asm-generic/socket.h,
// linux/netlink.h, linux/sock_diag.h, linux/unix_diag.h, linux/inet_diag.h, linux/netlink_diag.h,
// linux/tcp.h).

export const AF_UNSPEC = 0;
export const AF_UNIX = 1;
export const AF_LOCAL = 1;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_NETLINK = 16;
export const AF_PACKET = 17;

export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_RDM = 4;
export const SOCK_SEQPACKET = 5;
export const SOCK_PACKET = 10;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;

export const SOL_IP = 0;
export const SOL_SOCKET = 1;
export const SOL_TCP = 6;
export const SOL_UDP = 17;
export const SOL_IPV6 = 41;
export const SOL_PACKET = 263;
export const SOL_NETLINK = 270;

export const IPPROTO_IP = 0;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_IPV6 = 41;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_UDPLITE = 136;
export const IPPROTO_RAW = 255;
export const IPPROTO_MPTCP = 262;

// IP-level options (SOL_IP).
export const IP_FREEBIND = 15;

// SOL_SOCKET options.
export const SO_DEBUG = 1;
export const SO_REUSEADDR = 2;
export const SO_TYPE = 3;
export const SO_ERROR = 4;
export const SO_DONTROUTE = 5;
export const SO_BROADCAST = 6;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_KEEPALIVE = 9;
export const SO_OOBINLINE = 10;
export const SO_NO_CHECK = 11;
export const SO_PRIORITY = 12;
export const SO_LINGER = 13;
export const SO_BSDCOMPAT = 14;
export const SO_REUSEPORT = 15;
export const SO_PASSCRED = 16;
export const SO_PEERCRED = 17;
export const SO_RCVLOWAT = 18;
export const SO_SNDLOWAT = 19;
export const SO_RCVTIMEO_OLD = 20;
export const SO_SNDTIMEO_OLD = 21;
export const SO_BINDTODEVICE = 25;
export const SO_ATTACH_FILTER = 26;
export const SO_GET_FILTER = 26;
export const SO_DETACH_FILTER = 27;
export const SO_PEERNAME = 28;
export const SO_TIMESTAMP_OLD = 29;
export const SO_ACCEPTCONN = 30;
export const SO_PEERSEC = 31;
export const SO_SNDBUFFORCE = 32;
export const SO_RCVBUFFORCE = 33;
export const SO_PASSSEC = 34;
export const SO_MARK = 36;
export const SO_PROTOCOL = 38;
export const SO_DOMAIN = 39;
export const SO_RXQ_OVFL = 40;
export const SO_PEEK_OFF = 42;
export const SO_LOCK_FILTER = 44;
export const SO_BUSY_POLL = 46;
export const SO_INCOMING_CPU = 49;
/** u32 counters of the socket's memory, SK_MEMINFO_RMEM_ALLOC (bytes queued to read) first. */
export const SO_MEMINFO = 55;
export const SK_MEMINFO_VARS = 9;
export const SO_COOKIE = 57;
export const SO_PEERGROUPS = 59;
export const SO_ZEROCOPY = 60;
export const SO_BINDTOIFINDEX = 62;
export const SO_RCVTIMEO_NEW = 66;
export const SO_SNDTIMEO_NEW = 67;
/** Which buffer sizes the user set (bit 0 send, bit 1 receive): the kernel no longer tunes those. */
export const SO_BUF_LOCK = 72;
export const SO_PASSPIDFD = 76;
export const SO_PEERPIDFD = 77;

// Control messages.
export const SCM_RIGHTS = 1;
export const SCM_CREDENTIALS = 2;
export const SCM_PIDFD = 4;
/** The most fds one SCM_RIGHTS message carries (include/net/scm.h). */
export const SCM_MAX_FD = 253;
/** The listen(2) backlog limit's default (net.core.somaxconn). */
export const SOMAXCONN = 4096;

// send/recv flags.
export const MSG_OOB = 0x1;
export const MSG_PEEK = 0x2;
export const MSG_DONTROUTE = 0x4;
export const MSG_CTRUNC = 0x8;
export const MSG_TRUNC = 0x20;
export const MSG_DONTWAIT = 0x40;
export const MSG_EOR = 0x80;
export const MSG_WAITALL = 0x100;
export const MSG_NOSIGNAL = 0x4000;
export const MSG_CMSG_CLOEXEC = 0x40000000;

export const SHUT_RD = 0;
export const SHUT_WR = 1;
export const SHUT_RDWR = 2;

// TCP socket options (SOL_TCP).
export const TCP_NODELAY = 1;
export const TCP_MAXSEG = 2;
export const TCP_CORK = 3;
export const TCP_KEEPIDLE = 4;
export const TCP_KEEPINTVL = 5;
export const TCP_KEEPCNT = 6;
export const TCP_SYNCNT = 7;
export const TCP_LINGER2 = 8;
export const TCP_DEFER_ACCEPT = 9;
export const TCP_WINDOW_CLAMP = 10;
export const TCP_INFO = 11;
export const TCP_QUICKACK = 12;
export const TCP_CONGESTION = 13;
export const TCP_USER_TIMEOUT = 18;
export const TCP_REPAIR = 19;
/** TCP_REPAIR values: on, off (with a window probe), off without the probe. */
export const TCP_REPAIR_ON = 1;
export const TCP_REPAIR_OFF = 0;
export const TCP_REPAIR_OFF_NO_WP = -1;
export const TCP_REPAIR_QUEUE = 20;
export const TCP_QUEUE_SEQ = 21;
export const TCP_REPAIR_OPTIONS = 22;
export const TCP_FASTOPEN = 23;
export const TCP_TIMESTAMP = 24;
export const TCP_NOTSENT_LOWAT = 25;
export const TCP_REPAIR_WINDOW = 29;
export const TCP_NO_QUEUE = 0;
export const TCP_RECV_QUEUE = 1;
export const TCP_SEND_QUEUE = 2;
export const IPV6_V6ONLY = 26;
/** UDP socket option (SOL_UDP). */
export const UDP_CORK = 1;

// struct tcp_info tcpi_options bits.
export const TCPI_OPT_TIMESTAMPS = 1;
export const TCPI_OPT_SACK = 2;
export const TCPI_OPT_WSCALE = 4;

// TCP header option kinds (TCP_REPAIR_OPTIONS codes).
export const TCPOPT_MSS = 2;
export const TCPOPT_WINDOW = 3;
export const TCPOPT_SACK_PERM = 4;
export const TCPOPT_TIMESTAMP = 8;

// TCP states (inet_diag idiag_state and the `states` bit mask: 1 << state).
export const TCP_ESTABLISHED = 1;
export const TCP_SYN_SENT = 2;
export const TCP_SYN_RECV = 3;
export const TCP_FIN_WAIT1 = 4;
export const TCP_FIN_WAIT2 = 5;
export const TCP_TIME_WAIT = 6;
export const TCP_CLOSE = 7;
export const TCP_CLOSE_WAIT = 8;
export const TCP_LAST_ACK = 9;
export const TCP_LISTEN = 10;
export const TCP_CLOSING = 11;
export const TCP_NEW_SYN_RECV = 12;
/** Every TCP state in a diag `states` mask. */
export const TCPF_ALL = 0xffffffff;

// Socket ioctls.
export const SIOCINQ = 0x541b;
export const FIONREAD = 0x541b;
export const SIOCOUTQ = 0x5411;
export const TIOCOUTQ = 0x5411;
export const SIOCOUTQNSD = 0x894b;
export const SIOCGSKNS = 0x894c;
/** SIOCPROTOPRIVATE on a unix socket: an O_PATH fd of the file it is bound to. */
export const SIOCUNIXFILE = 0x89e0;

// Netlink.
export const NETLINK_ROUTE = 0;
export const NETLINK_SOCK_DIAG = 4;
export const NETLINK_NETFILTER = 12;
// SOL_NETLINK options.
export const NETLINK_ADD_MEMBERSHIP = 1;
export const NETLINK_DROP_MEMBERSHIP = 2;
export const NETLINK_PKTINFO = 3;
export const NETLINK_BROADCAST_ERROR = 4;
export const NETLINK_NO_ENOBUFS = 5;
export const NETLINK_LISTEN_ALL_NSID = 8;
export const NETLINK_CAP_ACK = 10;
export const NETLINK_EXT_ACK = 11;
export const NETLINK_GET_STRICT_CHK = 12;
/** sk_state of a netlink socket with a default destination (connect), and after a disconnect. */
export const NETLINK_UNCONNECTED = 0;
export const NETLINK_CONNECTED = 1;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_ECHO = 0x8;
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_ROOT = 0x100;
export const NLM_F_MATCH = 0x200;
export const NLM_F_DUMP = 0x300;
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;
export const NLMSG_HDRLEN = 16;

// sock_diag message types.
export const SOCK_DIAG_BY_FAMILY = 20;
export const SOCK_DESTROY = 21;

// unix_diag_req.udiag_show bits and the attributes they produce.
export const UDIAG_SHOW_NAME = 0x01;
export const UDIAG_SHOW_VFS = 0x02;
export const UDIAG_SHOW_PEER = 0x04;
export const UDIAG_SHOW_ICONS = 0x08;
export const UDIAG_SHOW_RQLEN = 0x10;
export const UDIAG_SHOW_MEMINFO = 0x20;
export const UDIAG_SHOW_UID = 0x40;
export const UNIX_DIAG_NAME = 0;
export const UNIX_DIAG_VFS = 1;
export const UNIX_DIAG_PEER = 2;
export const UNIX_DIAG_ICONS = 3;
export const UNIX_DIAG_RQLEN = 4;
export const UNIX_DIAG_MEMINFO = 5;
export const UNIX_DIAG_SHUTDOWN = 6;
export const UNIX_DIAG_UID = 7;

// netlink_diag_req.ndiag_show bits, the attributes they produce and the NETLINK_DIAG_FLAGS bits.
/** ndiag_protocol of a request for the sockets of every netlink protocol. */
export const NDIAG_PROTO_ALL = 255;
export const NDIAG_SHOW_MEMINFO = 0x1;
export const NDIAG_SHOW_GROUPS = 0x2;
export const NDIAG_SHOW_FLAGS = 0x8;
export const NETLINK_DIAG_MEMINFO = 0;
export const NETLINK_DIAG_GROUPS = 1;
export const NETLINK_DIAG_FLAGS = 4;
/** The socket is answering a dump request: the rest of the answer is still to be made. */
export const NDIAG_FLAG_CB_RUNNING = 0x1;
export const NDIAG_FLAG_PKTINFO = 0x2;
export const NDIAG_FLAG_BROADCAST_ERROR = 0x4;
export const NDIAG_FLAG_NO_ENOBUFS = 0x8;
export const NDIAG_FLAG_LISTEN_ALL_NSID = 0x10;
export const NDIAG_FLAG_CAP_ACK = 0x20;

// AF_PACKET (linux/if_packet.h): SOL_PACKET options, membership types, fanout.
export const PACKET_ADD_MEMBERSHIP = 1;
export const PACKET_DROP_MEMBERSHIP = 2;
export const PACKET_RX_RING = 5;
export const PACKET_STATISTICS = 6;
export const PACKET_COPY_THRESH = 7;
export const PACKET_AUXDATA = 8;
export const PACKET_ORIGDEV = 9;
export const PACKET_VERSION = 10;
export const PACKET_HDRLEN = 11;
export const PACKET_RESERVE = 12;
export const PACKET_TX_RING = 13;
export const PACKET_LOSS = 14;
export const PACKET_VNET_HDR = 15;
export const PACKET_TX_TIMESTAMP = 16;
export const PACKET_TIMESTAMP = 17;
export const PACKET_FANOUT = 18;
export const PACKET_TX_HAS_OFF = 19;
export const PACKET_QDISC_BYPASS = 20;
export const PACKET_ROLLOVER_STATS = 21;
export const PACKET_FANOUT_DATA = 22;
export const PACKET_IGNORE_OUTGOING = 23;
export const PACKET_VNET_HDR_SZ = 24;
export const PACKET_MR_MULTICAST = 0;
export const PACKET_MR_PROMISC = 1;
export const PACKET_MR_ALLMULTI = 2;
export const PACKET_MR_UNICAST = 3;
export const TPACKET_V1 = 0;
export const TPACKET_V2 = 1;
export const TPACKET_V3 = 2;
/** Fanout modes (the low byte of PACKET_FANOUT's upper half) and flags (its high byte, << 8). */
export const PACKET_FANOUT_HASH = 0;
export const PACKET_FANOUT_LB = 1;
export const PACKET_FANOUT_CPU = 2;
export const PACKET_FANOUT_ROLLOVER = 3;
export const PACKET_FANOUT_RND = 4;
export const PACKET_FANOUT_QM = 5;
export const PACKET_FANOUT_CBPF = 6;
export const PACKET_FANOUT_EBPF = 7;
export const PACKET_FANOUT_FLAG_ROLLOVER = 0x1000;
export const PACKET_FANOUT_FLAG_UNIQUEID = 0x2000;
export const PACKET_FANOUT_FLAG_IGNORE_OUTGOING = 0x4000;
export const PACKET_FANOUT_FLAG_DEFRAG = 0x8000;
/** struct packet_mreq's mr_address (MAX_ADDR_LEN). */
export const PACKET_MAX_ADDR_LEN = 32;

// packet_diag_req.pdiag_show bits (linux/packet_diag.h), the attributes they produce, PDI_* flags.
export const PACKET_SHOW_INFO = 0x1;
export const PACKET_SHOW_MCLIST = 0x2;
export const PACKET_SHOW_RING_CFG = 0x4;
export const PACKET_SHOW_FANOUT = 0x8;
export const PACKET_SHOW_MEMINFO = 0x10;
export const PACKET_SHOW_FILTER = 0x20;
export const PACKET_DIAG_INFO = 0;
export const PACKET_DIAG_MCLIST = 1;
export const PACKET_DIAG_RX_RING = 2;
export const PACKET_DIAG_TX_RING = 3;
export const PACKET_DIAG_FANOUT = 4;
export const PACKET_DIAG_UID = 5;
export const PACKET_DIAG_MEMINFO = 6;
export const PACKET_DIAG_FILTER = 7;
export const PDI_RUNNING = 0x1;
export const PDI_AUXDATA = 0x2;
export const PDI_ORIGDEV = 0x4;
export const PDI_VNETHDR = 0x8;
export const PDI_LOSS = 0x10;

/** ioctl: the name of the network device with an index (struct ifreq: ifr_name, ifr_ifindex). */
export const SIOCGIFNAME = 0x8910;
/** ioctl: the index of the network device with a name. */
export const SIOCGIFINDEX = 0x8933;

// inet_diag attributes; request them with idiag_ext bit 1 << (attr - 1).
export const INET_DIAG_NONE = 0;
export const INET_DIAG_MEMINFO = 1;
export const INET_DIAG_INFO = 2;
export const INET_DIAG_VEGASINFO = 3;
export const INET_DIAG_CONG = 4;
export const INET_DIAG_TOS = 5;
export const INET_DIAG_TCLASS = 6;
export const INET_DIAG_SKMEMINFO = 7;
export const INET_DIAG_SHUTDOWN = 8;
export const INET_DIAG_DCTCPINFO = 9;
export const INET_DIAG_PROTOCOL = 10;
export const INET_DIAG_SKV6ONLY = 11;
export const INET_DIAG_LOCALS = 12;
export const INET_DIAG_PEERS = 13;
export const INET_DIAG_PAD = 14;
export const INET_DIAG_MARK = 15;
export const INET_DIAG_BBRINFO = 16;
export const INET_DIAG_CLASS_ID = 17;
export const INET_DIAG_MD5SIG = 18;
export const INET_DIAG_ULP_INFO = 19;
export const INET_DIAG_SK_BPF_STORAGES = 20;
export const INET_DIAG_CGROUP_ID = 21;
export const INET_DIAG_SOCKOPT = 22;
/** The inet_diag "no cookie" value: match any socket with the given addresses. */
export const INET_DIAG_NOCOOKIE = 0xffffffff;
