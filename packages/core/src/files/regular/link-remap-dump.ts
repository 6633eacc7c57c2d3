// Link remaps, dump side (--link-remap): a file that still has names (st_nlink > 0) but not the one its
// task opened it by (unlinked while another hard link remains, or its directory gone) is linked back
// under a new name in the same directory, `link_remap.ID`, with linkat(AT_EMPTY_PATH) on the file
// itself. files.img gets an entry for that name and remap-fpath a LINKED entry from the task's file to
// it: restore opens the very inode again, as CRIU does. The name stays on disk for the restore, which
// removes it; a dump that fails, or leaves the tree running (-R), removes it at once.

import { basename, dirname } from 'node:path';
import { RemapType } from '@criu-ts/images';
import { AT_EMPTY_PATH, AT_FDCWD, linkat, O_CLOEXEC, O_PATH, open, SysError, unlinkat } from '@criu-ts/sys';
import { DumpError } from '../../dump/errors.js';
import { noOwner } from '../fown.js';
import { FD_TYPE, type FileTable } from '../table.js';

/** What the remap-fpath LINKED entry is made of. */
export function addLinkRemap(
  files: FileTable,
  origId: number,
  name: string,
  procPath: string | undefined,
  owner: string,
): void {
  if (!files.options.linkRemap) {
    // CRIU's words.
    throw new DumpError(`${owner}: Can't create link remap for ${name}. Use link-remap option.`);
  }
  if (!procPath) throw new DumpError(`${owner}: file ${name} has no /proc path to link it back from`);
  let fd: number;
  try {
    fd = open(procPath, O_PATH | O_CLOEXEC);
  } catch (e) {
    throw new DumpError(`${owner}: cannot open ${name} (${procPath}): ${(e as Error).message}`);
  }
  files.closeLater(fd);
  const linkId = files.ids.unique();
  const leaf = `link_remap.${linkId}`;
  let dir = dirname(name);
  let linkName = `${dir === '/' ? '' : dir}/${leaf}`;
  for (;;) {
    try {
      linkat(fd, '', AT_FDCWD, linkName, AT_EMPTY_PATH);
      break;
    } catch (e) {
      // A directory gone too: the name goes one level up (CRIU's trim_last_parent).
      if (e instanceof SysError && e.code === 'ENOENT' && dir !== '/') {
        dir = dirname(dir);
        linkName = `${dir === '/' ? '' : dir}/${basename(leaf)}`;
        continue;
      }
      throw new DumpError(`${owner}: Can't link remap to ${name}: ${(e as Error).message}`);
    }
  }
  files.onUndo(() => {
    // A tree left stopped (-s) keeps its link remaps for a later restore, as CRIU's does.
    if (files.options.leaveStopped && files.imagesWritten) return;
    unlinkat(AT_FDCWD, linkName);
  });
  files.entries.push({
    id: linkId,
    type: FD_TYPE.REG,
    reg: { id: linkId, flags: 0, pos: 0n, fown: noOwner(), name: linkName },
  });
  files.remaps.push({ orig_id: origId, remap_id: linkId, remap_type: RemapType.LINKED });
}
