/** The end of a run forced from outside: its wall-clock limit passing, or its signal aborting. */
export interface Deadline {
  readonly timedOut: boolean;
  readonly aborted: boolean;
  /** The run ended by itself: cancel the timer and the abort listener. */
  clear(): void;
}

/**
 * Call `stop` once the limit passes or the signal aborts (whichever comes first), unless `exited()` says
 * the run is already over; `timedOut`/`aborted` tell which one it was.
 */
export function armDeadline(o: {
  timeoutMs?: number;
  signal?: AbortSignal;
  exited: () => boolean;
  stop: () => void;
}): Deadline {
  const state = { timedOut: false, aborted: false };
  const timer =
    o.timeoutMs !== undefined
      ? setTimeout(() => {
          if (o.exited()) return;
          state.timedOut = true;
          o.stop();
        }, o.timeoutMs)
      : undefined;
  const onAbort = () => {
    if (o.exited()) return;
    state.aborted = true;
    o.stop();
  };
  if (o.signal?.aborted) onAbort();
  else o.signal?.addEventListener('abort', onAbort, { once: true });
  return {
    get timedOut() {
      return state.timedOut;
    },
    get aborted() {
      return state.aborted;
    },
    clear() {
      if (timer) clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
    },
  };
}
