/**
 * Ids of shared kernel objects, as CRIU numbers them: the same object (found by a key such
 * as an inode or a kcmp comparison) gets the same id, new objects get the next number.
 */
export class IdAllocator<K> {
  private readonly byKey = new Map<K, number>();
  private next: number;

  constructor(first = 1) {
    this.next = first;
  }

  /** The id of `key`, and whether it was just created. */
  get(key: K): { id: number; fresh: boolean } {
    const known = this.byKey.get(key);
    if (known !== undefined) return { id: known, fresh: false };
    const id = this.next++;
    this.byKey.set(key, id);
    return { id, fresh: true };
  }

  /** A new id that no key will share. */
  unique(): number {
    return this.next++;
  }
}
