/** An environment variable in Node; undefined where there is no `process` (a web page). */
export function envVar(name: string): string | undefined {
  return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[name];
}
