/**
 * Packets with this mark pass the network lock: segments criu-ts itself writes to a restored socket
 * (a peer's FIN replayed). It is CRIU's SOCCR_MARK, so that both tools' locks let both through.
 */
export const LOCK_BYPASS_MARK = 0xc114;
