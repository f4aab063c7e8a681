/** What a sandbox can give a trial on this machine; a trial asking for more is refused, never weakened. */
export interface SandboxCapabilities {
  /** The sandbox can run here at all. */
  available: boolean;
  /** It can hand the command GPUs. */
  gpus: boolean;
  /**
   * `bridged`: a private network with only the harness's sockets as ways out (every egress policy);
   * `none-only`: a private network with no way out (only the `none` policy);
   * `host`: the host's network, no policy enforced (the `none` sandbox).
   */
  networkPolicy: 'bridged' | 'none-only' | 'host';
  /** Where the command's programs come from: the host's own filesystem, or an image. */
  environment: 'host' | 'image';
  /** Why something is unavailable, or a short summary of what was found. */
  reason: string;
}
