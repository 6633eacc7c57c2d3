// A Node program that dumps itself through a criu-ts (or CRIU) service: `node self-dump.mjs SOCKET DIR`.
// It says READY, asks for a dump of itself (no pid) and, once restored from those images, says what the
// reply was and how far its timer had counted, then exits.
import { CriuClient } from '../dist/index.js';

const [sock, imagesDir] = process.argv.slice(2);
let ticks = 0;
const timer = setInterval(() => ticks++, 5);
process.stdout.write(`READY ${process.pid}\n`);
const reply = await CriuClient.service(sock).dump({ imagesDir, log_file: 'dump.log' });
const before = ticks;
// The event loop runs on after the restore: the timer counts again.
while (ticks < before + 3) await new Promise((r) => setTimeout(r, 5));
clearInterval(timer);
process.stdout.write(`REPLY restored=${reply.restored === true} ticks=${ticks}\n`);
process.exit(0);
