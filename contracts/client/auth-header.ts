/** The HTTP Basic `authorization` header every corral client sends. */
export function basicAuthHeader(principal: string, secret: string): string {
  return 'Basic ' + Buffer.from(`${principal}:${secret}`).toString('base64');
}
