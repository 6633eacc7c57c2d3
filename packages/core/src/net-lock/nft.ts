// The network lock: while a connection is between its dump and its restore, every packet of it is
// dropped, so that neither end answers the other with a reset (the dumped socket is gone, the
// restored one not there yet). One nftables table per connection, named after its two ends, with a
// rule per direction on the input hook (loopback traffic passes it too); restore removes the table
// once the connection is back. Needs `nft` (Debian's nftables package). CRIU does the same with
// iptables or nftables rules; `--network-lock skip` leaves it to the caller.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { DumpError } from '../dump/errors.js';

export interface Connection {
  family: 'ip' | 'ip6';
  local: string;
  localPort: number;
  remote: string;
  remotePort: number;
}

/** A table name from both ends (nft names: letters, digits, underscores). */
export function lockName(c: Connection): string {
  const h = createHash('sha1').update(`${c.family} ${c.local} ${c.localPort} ${c.remote} ${c.remotePort}`);
  return `criu_ts_${c.localPort}_${c.remotePort}_${h.digest('hex').slice(0, 8)}`;
}

function nft(script: string): void {
  execFileSync('nft', ['-f', '-'], { input: script, stdio: ['pipe', 'ignore', 'pipe'] });
}

export function lockConnection(c: Connection): void {
  const t = lockName(c);
  const fam = c.family;
  try {
    nft(
      [
        `table inet ${t} {`,
        '  chain input {',
        '    type filter hook input priority -300; policy accept;',
        `    ${fam} saddr ${c.remote} tcp sport ${c.remotePort} ${fam} daddr ${c.local} tcp dport ${c.localPort} drop`,
        `    ${fam} saddr ${c.local} tcp sport ${c.localPort} ${fam} daddr ${c.remote} tcp dport ${c.remotePort} drop`,
        '  }',
        '}',
      ].join('\n'),
    );
  } catch (e) {
    const why = (e as { stderr?: Buffer }).stderr?.toString().trim() || (e as Error).message;
    throw new DumpError(
      `network lock for ${c.local}:${c.localPort} <-> ${c.remote}:${c.remotePort}: nft failed: ${why}`,
    );
  }
}

export function unlockConnection(c: Connection): void {
  try {
    nft(`delete table inet ${lockName(c)}`);
  } catch {
    // not locked (--network-lock skip at dump), or unlocked already
  }
}
