// How error messages in the data layer name a value they got ("got number 5", "got null", "got an array").

/** A short description of `value` for an error message's "got …" part. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return value.length > 40 ? `a string "${value.slice(0, 40)}…"` : `a string ${JSON.stringify(value)}`;
  if (ArrayBuffer.isView(value) && 'length' in value) return `a ${value.constructor.name} of ${(value as unknown as ArrayLike<unknown>).length}`;
  if (typeof value === 'object') return value.constructor?.name && value.constructor !== Object ? `a ${value.constructor.name}` : 'an object';
  return `${typeof value} ${String(value)}`;
}
