import { join } from 'node:path';
import { ImageDir, imageToCrit, type PyJson } from '@criu-ts/images';

/**
 * `crit x DIR ps|fds|mems|rss`: summaries of a whole image directory, in crit's layout.
 * They read crit's own dictionaries (not pretty), so what they print matches crit's.
 */
type Dict = Record<string, PyJson>;

const load = (dir: string, file: string) => imageToCrit(join(dir, file)).entries as Dict[];
const num = (v: PyJson | undefined) => Number(v ?? 0);
const pad = (v: string | number, n: number) => String(v).padStart(n);
const hex = (v: number | bigint) => BigInt(v).toString(16);

function taskId(p: Dict, key: string): number {
  return key in p ? num(p[key]) : num((p[`ns_${key}`] as PyJson[])[0]);
}

export function explore(dir: string, what: string, print: (line: string) => void): void {
  ImageDir.open(dir);
  const explorers: Record<string, () => void> = {
    ps: () => explorePs(dir, print),
    fds: () => exploreFds(dir, print),
    mems: () => exploreMems(dir, print),
    rss: () => exploreRss(dir, print),
  };
  const run = explorers[what];
  if (!run) throw new Error(`unknown explorer ${what} (ps, fds, mems, rss)`);
  run();
}

function explorePs(dir: string, print: (l: string) => void): void {
  interface Node {
    pid: number;
    p: Dict;
    comm: string;
    kids: Node[];
  }
  const nodes = new Map<number, Node>();
  for (const p of load(dir, 'pstree.img')) {
    const pid = taskId(p, 'pid');
    const core = load(dir, `core-${pid}.img`)[0]!;
    nodes.set(pid, { pid, p, comm: String((core.tc as Dict).comm), kids: [] });
  }
  let root: Node | undefined;
  for (const n of nodes.values()) {
    const ppid = num(n.p.ppid);
    if (ppid === 0) root = n;
    else nodes.get(ppid)?.kids.push(n);
  }
  print(`${pad('PID', 7)}${pad('PGID', 7)}${pad('SID', 7)}   COMM`);
  const show = (n: Node, depth: number) => {
    print(
      `${pad(n.pid, 7)}${pad(taskId(n.p, 'pgid'), 7)}${pad(taskId(n.p, 'sid'), 7)}   ${' '.repeat(4 * depth)}${n.comm}`,
    );
    for (const k of n.kids) show(k, depth + 1);
  };
  if (root) show(root, 0);
}

/**
 * Names files the way crit does: a path for regular files, pipe[N], unix[...], else TYPE.id.
 * A file is looked up in files.img, and where that has no such id (or older dumps have no
 * files.img) in the image of its type: reg-files.img, pipes.img, unixsk.img.
 */
class FileNames {
  private files: Dict[] | undefined;
  private readonly images = new Map<string, Dict[]>();
  constructor(private readonly dir: string) {}

  private loadOr(file: string): Dict[] {
    try {
      return load(this.dir, file);
    } catch {
      return [];
    }
  }

  /** crit's ftype_find_in_image: the `field` sub-message of a files.img entry, or an `image` entry. */
  private find(field: string, image: string, id: number): Dict | undefined {
    this.files ??= this.loadOr('files.img');
    const f = this.files.find((x) => num(x.id) === id);
    if (f) return f[field] as Dict | undefined;
    let list = this.images.get(image);
    if (list === undefined) {
      list = this.loadOr(image);
      this.images.set(image, list);
    }
    return list.find((x) => num(x.id) === id);
  }

  name(type: string, id: number): string {
    if (type === 'REG') {
      const reg = this.find('reg', 'reg-files.img', id);
      return reg?.name ? String(reg.name) : 'unknown path';
    }
    if (type === 'PIPE') {
      const pipe = this.find('pipe', 'pipes.img', id);
      return pipe ? `pipe[${num(pipe.pipe_id)}]` : 'pipe[?]';
    }
    if (type === 'UNIXSK') {
      const ux = this.find('usk', 'unixsk.img', id);
      if (!ux) return 'unix[?]';
      const n = ux.name ? ` ${String(ux.name)}` : '';
      return `unix[${num(ux.ino)} (${num(ux.peer)})${n}]`;
    }
    return `${type}.${id}`;
  }
}

function exploreFds(dir: string, print: (l: string) => void): void {
  const names = new FileNames(dir);
  for (const p of load(dir, 'pstree.img')) {
    const pid = taskId(p, 'pid');
    const filesId = num(load(dir, `ids-${pid}.img`)[0]!.files_id);
    print(String(pid));
    for (const fd of load(dir, `fdinfo-${filesId}.img`)) {
      print(`\t${pad(num(fd.fd), 7)}: ${names.name(String(fd.type), num(fd.id))}`);
    }
    const fs = load(dir, `fs-${pid}.img`)[0]!;
    print(`\t${pad('cwd', 7)}: ${names.name('REG', num(fs.cwd_id))}`);
    print(`\t${pad('root', 7)}: ${names.name('REG', num(fs.root_id))}`);
  }
}

function exploreMems(dir: string, print: (l: string) => void): void {
  const names = new FileNames(dir);
  const vmaIds = new Map<string, number>();
  const vid = (id: PyJson | undefined) => {
    const key = String(id);
    if (!vmaIds.has(key)) vmaIds.set(key, vmaIds.size + 1);
    return vmaIds.get(key)!;
  };
  for (const p of load(dir, 'pstree.img')) {
    const pid = taskId(p, 'pid');
    const mm = load(dir, `mm-${pid}.img`)[0]!;
    print(String(pid));
    print(`\t${'exe'.padEnd(36)}    ${names.name('REG', num(mm.exe_file_id))}`);
    for (const vma of (mm.vmas ?? []) as Dict[]) {
      const st = num(vma.status);
      let fn = '';
      if (st & (1 << 10)) fn = ` ips[${hex(vid(vma.shmid))}]`;
      else if (st & (1 << 8)) fn = ` shmem[${hex(vid(vma.shmid))}]`;
      else if (st & (1 << 11)) fn = ` packet[${hex(vid(vma.shmid))}]`;
      else if (st & ((1 << 6) | (1 << 7))) {
        fn = ` ${names.name('REG', num(vma.shmid))}`;
        if (num(vma.pgoff)) fn += ` + 0x${hex(BigInt(vma.pgoff as bigint))}`;
        if (st & (1 << 7)) fn += ' (s)';
      } else if (st & (1 << 1)) fn = ' [stack]';
      else if (st & (1 << 2)) fn = ' [vsyscall]';
      else if (st & (1 << 3)) fn = ' [vdso]';
      else if (num(vma.flags) & 0x100) fn = ' [stack?]';
      if (!(st & 1)) fn += ' *';
      const prot = num(vma.prot);
      const rwx = `${prot & 1 ? 'r' : '-'}${prot & 2 ? 'w' : '-'}${prot & 4 ? 'x' : '-'}`;
      const range = `${hex(BigInt(vma.start as bigint)).padStart(8, '0')}-${hex(BigInt(vma.end as bigint)).padStart(8, '0')}`;
      print(`\t${range.padEnd(36)}${rwx}${fn}`);
    }
  }
}

function exploreRss(dir: string, print: (l: string) => void): void {
  const names = new FileNames(dir);
  for (const p of load(dir, 'pstree.img')) {
    const pid = taskId(p, 'pid');
    const vmas = (load(dir, `mm-${pid}.img`)[0]!.vmas ?? []) as Dict[];
    const pms = load(dir, `pagemap-${pid}.img`);
    print(String(pid));
    let vmi = 0;
    let pvmi = -1;
    for (const pm of pms.slice(1)) {
      const vaddr = BigInt(pm.vaddr as bigint);
      const pages = BigInt((pm.nr_pages ?? pm.compat_nr_pages) as bigint);
      const pstr = `\t${hex(vaddr)} / ${String(pages).padEnd(8)}`;
      while (vmi < vmas.length && BigInt(vmas[vmi]!.end as bigint) <= vaddr) vmi++;
      const pme = vaddr + (pages << 12n);
      let vstr = '';
      while (vmi < vmas.length && BigInt(vmas[vmi]!.start as bigint) < pme) {
        const vma = vmas[vmi]!;
        if (vmi === pvmi) vstr += ' ~';
        else {
          const start = BigInt(vma.start as bigint);
          const size = (BigInt(vma.end as bigint) - start) >> 12n;
          vstr += ` ${hex(start).padStart(8, '0')} / ${String(size).padEnd(8)}`;
          if (num(vma.status) & ((1 << 6) | (1 << 7))) vstr += ` ${names.name('REG', num(vma.shmid))}`;
          pvmi = vmi;
        }
        vstr += `\n\t${''.padStart(23)}`;
        vmi++;
      }
      vmi--;
      print(`${pstr.padEnd(24)}${vstr}`);
    }
  }
}
