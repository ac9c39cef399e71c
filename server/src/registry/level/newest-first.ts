/**
 * Sets `key` in a Map used as a bounded cache, as its most recent entry, and drops the least
 * recent one beyond `capacity`. A Map keeps insertion order, so deleting first makes the entry
 * the newest, and the first key is always the least recently set.
 */
export function setAsNewest<K, V>(map: Map<K, V>, key: K, value: V, capacity: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > capacity) {
    const oldest = map.keys().next();
    if (!oldest.done) map.delete(oldest.value);
  }
}
