import { readProcLink } from '@criu-ts/bfd';
import {
  CLONE_NEWCGROUP,
  CLONE_NEWIPC,
  CLONE_NEWNET,
  CLONE_NEWNS,
  CLONE_NEWPID,
  CLONE_NEWTIME,
  CLONE_NEWUSER,
  CLONE_NEWUTS,
} from '@criu-ts/sys';
import { DumpError } from '../../dump/errors.js';
import { FD_TYPE, type FdDumpDriver, type FileTable } from '../table.js';

/** The kinds of namespace, as their links and /proc/PID/ns names say, and their CLONE_NEW* flags. */
export const NS_KINDS: ReadonlyArray<{ name: string; flag: number }> = [
  { name: 'net', flag: Number(CLONE_NEWNET) },
  { name: 'ipc', flag: Number(CLONE_NEWIPC) },
  { name: 'uts', flag: Number(CLONE_NEWUTS) },
  { name: 'mnt', flag: Number(CLONE_NEWNS) },
  { name: 'pid', flag: Number(CLONE_NEWPID) },
  { name: 'user', flag: Number(CLONE_NEWUSER) },
  { name: 'cgroup', flag: Number(CLONE_NEWCGROUP) },
  { name: 'time', flag: Number(CLONE_NEWTIME) },
];

const NS_LINK = /^([a-z]+):\[(\d+)\]$/;

/** Whether a link names a namespace ("net:[4026531840]"): a namespace file. */
export function isNamespaceLink(link: string): boolean {
  const m = NS_LINK.exec(link);
  return m !== null && NS_KINDS.some((k) => k.name === m[1]);
}

/** The namespaces the tasks of the tree are in, as their /proc/PID/ns links read ("net:[4026531840]"). */
function treeNamespaces(files: FileTable): Set<string> {
  return files.cached('nsfile:tree', () => {
    const out = new Set<string>();
    for (const pid of files.pids)
      for (const k of NS_KINDS) {
        try {
          const link = readProcLink(pid, `ns/${k.name}`);
          if (link !== undefined) out.add(link);
        } catch {
          // a kind this kernel does not have
        }
      }
    return out;
  });
}

export const nsFileDriver: FdDumpDriver = {
  kind: 'namespace file',
  dump(file, files) {
    const kind = NS_KINDS.find((k) => k.name === NS_LINK.exec(file.link)![1])!;
    if (!treeNamespaces(files).has(file.link))
      throw new DumpError(
        `pid ${file.pid} fd ${file.fd}: the namespace file ${file.link} is of a namespace no task of the tree is in: not supported`,
      );
    const nsId = files.nsIds.get(file.link).id;
    const id = files.add(files.descriptionKey(file), (id) => ({
      id,
      type: FD_TYPE.NS,
      nsf: { id, ns_id: nsId, ns_cflag: kind.flag, flags: file.flags },
    }));
    return { id, type: FD_TYPE.NS };
  },
};
