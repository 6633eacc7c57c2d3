// nf_tables over NETLINK_NETFILTER, the little the network lock needs without running `nft`: whether a
// table exists (a netlink request costs microseconds, starting `nft` tens of milliseconds).
import {
  AF_NETLINK,
  NETLINK_NETFILTER,
  NLM_F_ACK,
  NLM_F_REQUEST,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  SOCK_CLOEXEC,
  SOCK_RAW,
} from './constants/socket.js';
import { SysError } from './errno.js';
import { close } from './files.js';
import { recv, send, socket } from './socket.js';

/** nftables address families (NFPROTO_*), as `nft` names them. */
export const NFPROTO = { inet: 1, ip: 2, arp: 3, netdev: 5, bridge: 7, ip6: 10 } as const;
export type NftFamily = keyof typeof NFPROTO;

const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_NEWTABLE = 0;
const NFT_MSG_GETTABLE = 1;
const NFTA_TABLE_NAME = 1;
const NFGENMSG_LEN = 4;
const ENOENT = 2;

const align4 = (n: number) => (n + 3) & ~3;
let seqCounter = 1;

/**
 * Whether nftables table `family name` exists in this network namespace (NFT_MSG_GETTABLE). Needs
 * CAP_NET_ADMIN; throws a SysError for any answer but the table or ENOENT.
 */
export function nftTableExists(family: NftFamily, name: string): boolean {
  const nameBytes = Buffer.from(`${name}\0`);
  const attrLen = 4 + nameBytes.length;
  const len = NLMSG_HDRLEN + NFGENMSG_LEN + align4(attrLen);
  const req = Buffer.alloc(len);
  const seq = seqCounter++;
  req.writeUInt32LE(len, 0);
  req.writeUInt16LE((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE, 4);
  req.writeUInt16LE(NLM_F_REQUEST | NLM_F_ACK, 6);
  req.writeUInt32LE(seq, 8);
  req[NLMSG_HDRLEN] = NFPROTO[family]; // nfgenmsg: family, version 0, res_id 0
  const at = NLMSG_HDRLEN + NFGENMSG_LEN;
  req.writeUInt16LE(attrLen, at);
  req.writeUInt16LE(NFTA_TABLE_NAME, at + 2);
  nameBytes.copy(req, at + 4);

  const fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  try {
    send(fd, req);
    const buf = Buffer.alloc(16 * 1024);
    let found = false;
    for (;;) {
      const n = recv(fd, buf);
      for (let off = 0; off + NLMSG_HDRLEN <= n; ) {
        const mlen = buf.readUInt32LE(off);
        const type = buf.readUInt16LE(off + 4);
        if (mlen < NLMSG_HDRLEN) return found;
        if (buf.readUInt32LE(off + 8) === seq) {
          if (type === ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE)) found = true;
          if (type === NLMSG_ERROR) {
            const err = -buf.readInt32LE(off + NLMSG_HDRLEN);
            if (err === 0) return found;
            if (err === ENOENT) return false;
            throw new SysError('nft getTable', err, `${family} ${name}`);
          }
        }
        off += align4(mlen);
      }
    }
  } finally {
    close(fd);
  }
}
