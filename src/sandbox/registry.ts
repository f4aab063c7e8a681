/**
 * Every sandbox an agent can run in, behind one interface: `capabilities()` says what it can give on
 * this machine, `run(spec)` runs a bwrap-style SandboxSpec (the container kinds translate it with
 * toContainerSpec). `assertSandboxCan` refuses a trial the chosen sandbox cannot honour (GPUs, the
 * network policy, `none` without the explicit opt-out, a missing image) before anything starts:
 * ptb never runs a trial with weaker isolation than it asked for.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { UserError } from '../core/errors.ts';
import type { SandboxKind, TrialSpec } from '../core/trial.ts';
import { apptainerCapabilities, runInApptainer } from './apptainer.ts';
import { isBwrapAvailable, runInSandbox, type SandboxResult, type SandboxSpec } from './bwrap.ts';
import type { SandboxCapabilities } from './capabilities.ts';
import { type ContainerSpec, type ToContainerOptions, toContainerSpec } from './container.ts';
import { nvidiaDriverPresent } from './gpuGate.ts';
import { defaultImage } from './imageBuild.ts';
import { podmanCapabilities, runInPodman } from './podman.ts';
import { runUnsandboxed } from './unsandboxed.ts';

export type { SandboxCapabilities } from './capabilities.ts';

/** How a run in a container differs from the bwrap spec it was written as. */
export interface SandboxRunOptions extends Omit<ToContainerOptions, 'image'> {
  /** podman image reference or apptainer .sif path (default: the image `ptb image build` makes). */
  image?: string;
}

export interface SandboxBackend {
  kind: SandboxKind;
  description: string;
  capabilities(): SandboxCapabilities;
  run(spec: SandboxSpec, options?: SandboxRunOptions): Promise<SandboxResult>;
}

function bwrapCapabilities(): SandboxCapabilities {
  const available = isBwrapAvailable();
  const gpus = nvidiaDriverPresent();
  return {
    available,
    gpus: available && gpus,
    networkPolicy: 'bridged',
    environment: 'host',
    reason: available
      ? `the host's own programs (/usr, /etc, ptb's Python) in fresh namespaces; ${gpus ? 'GPUs by device node' : 'no NVIDIA driver'}`
      : 'bwrap is missing or cannot create namespaces here (apt-get install bubblewrap)',
  };
}

function containerSpecFor(
  kind: 'podman' | 'apptainer',
  spec: SandboxSpec,
  options: SandboxRunOptions,
): ContainerSpec {
  const { image, ...rest } = options;
  return toContainerSpec(spec, { ...rest, image: image ?? defaultImage(kind) });
}

export const SANDBOXES: Readonly<Record<SandboxKind, SandboxBackend>> = {
  bwrap: {
    kind: 'bwrap',
    description: "bubblewrap namespaces over the host's own environment (its /usr, its Python)",
    capabilities: bwrapCapabilities,
    run: (spec) => runInSandbox(spec),
  },
  podman: {
    kind: 'podman',
    description: 'a podman container of the ptb agent image (ptb image build)',
    capabilities: podmanCapabilities,
    run: (spec, options = {}) => runInPodman(containerSpecFor('podman', spec, options)),
  },
  apptainer: {
    kind: 'apptainer',
    description: 'an apptainer container of the ptb agent image (ptb image build --kind apptainer)',
    capabilities: apptainerCapabilities,
    run: (spec, options = {}) => runInApptainer(containerSpecFor('apptainer', spec, options)),
  },
  none: {
    kind: 'none',
    description: 'no sandbox: the host itself (only with --unsafe-no-sandbox)',
    capabilities: () => ({
      available: true,
      gpus: true,
      networkPolicy: 'host',
      environment: 'host',
      reason: 'no isolation: host network, host files, no limits',
    }),
    run: (spec) => runUnsandboxed(spec),
  },
};

export function getSandbox(kind: SandboxKind): SandboxBackend {
  return SANDBOXES[kind];
}

export interface SandboxNeeds {
  gpus: number;
  network: TrialSpec['network'];
  unsafeNoSandbox?: boolean;
  /** The image a container kind will run; refused when it is not there. */
  image?: string;
}

const INSTALL_HINT: Record<SandboxKind, string> = {
  bwrap: 'install bubblewrap (apt-get install bubblewrap); in a container, allow user namespaces',
  podman:
    'install podman and runc (apt-get install podman runc), then build the image with `ptb image build`',
  apptainer: 'install apptainer, then build the image with `ptb image build --kind apptainer`',
  none: '',
};

/** Is the image there? podman: `podman image exists`; apptainer: the .sif file. */
export function imagePresent(kind: 'podman' | 'apptainer', image: string): boolean {
  if (kind === 'apptainer') return existsSync(image);
  return spawnSync('podman', ['image', 'exists', image], { timeout: 30_000 }).status === 0;
}

/**
 * Refuse (UserError) a trial the sandbox cannot honour; returns the capabilities it checked.
 * `capabilities` may be passed in (tests, or a caller that already probed).
 */
export function assertSandboxCan(
  kind: SandboxKind,
  needs: SandboxNeeds,
  capabilities?: SandboxCapabilities,
): SandboxCapabilities {
  if (kind === 'none' && !needs.unsafeNoSandbox) {
    throw new UserError(
      'The none sandbox runs the agent directly on the host: no isolation, the host network, no limits.',
      'pass --unsafe-no-sandbox to accept that, or choose --sandbox bwrap, podman or apptainer',
    );
  }
  const caps = capabilities ?? SANDBOXES[kind].capabilities();
  if (!caps.available) {
    throw new UserError(`The ${kind} sandbox is not available here: ${caps.reason}.`, INSTALL_HINT[kind]);
  }
  if (needs.gpus > 0 && !caps.gpus) {
    throw new UserError(
      `This trial asks for ${needs.gpus} GPU(s), but the ${kind} sandbox cannot give GPUs here: ${caps.reason}.`,
      kind === 'podman'
        ? 'generate an NVIDIA CDI spec (nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml), or use --gpus 0 or another sandbox'
        : 'use --gpus 0, or a sandbox and machine that have GPUs',
    );
  }
  if (kind !== 'none') {
    const wanted = needs.network === 'none' ? ['bridged', 'none-only'] : ['bridged'];
    if (!wanted.includes(caps.networkPolicy)) {
      const what =
        needs.network === 'none'
          ? 'a private network with no way out'
          : 'a private network whose only way out is the harness proxy';
      throw new UserError(
        `This trial's network policy '${needs.network}' needs ${what}, but the ${kind} sandbox here offers '${caps.networkPolicy}': ${caps.reason}.`,
        'choose a sandbox that can isolate the network (bwrap or podman)',
      );
    }
  }
  if (
    needs.image !== undefined &&
    (kind === 'podman' || kind === 'apptainer') &&
    !imagePresent(kind, needs.image)
  ) {
    throw new UserError(
      `The ${kind} image ${needs.image} is not there.`,
      `build it with \`ptb image build${kind === 'apptainer' ? ' --kind apptainer' : ''}\``,
    );
  }
  return caps;
}
