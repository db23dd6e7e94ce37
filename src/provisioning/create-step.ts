/**
 * One create of `setup`: record `pending`, create, record `created`. When the create is refused because the name
 * is taken (`EntityAlreadyExists.*`: someone else created it between setup's read and its create), the resource is
 * not setup's: the `pending` mark is dropped, the resource is re-read and adopted when it fits, like any resource
 * that existed before — otherwise the step fails with what to fix. It is never recorded as created.
 */
import { ControlPlaneError } from './control-plane-client.js';
import type { ConfigFile, ResourceType } from './record.js';

export interface CreateStep<T> {
  type: ResourceType;
  name: string;
  label: string;
  create(): Promise<T>;
  /** Records the created resource (status `created`, with its identity). */
  created(value: T): Promise<void> | void;
  /** Re-reads the resource; records it `adopted` and returns undefined when it fits, else returns what to fix. */
  adopt(): Promise<string | undefined>;
}

/** What `adopt` returns when the resource cannot be read back. */
export const GONE = 'it could not be read back (was it deleted again?)';

/** Returns the line to print instead of "created …" when the resource was adopted. */
export async function createOrAdopt<T>(file: ConfigFile, step: CreateStep<T>): Promise<string | undefined> {
  file.track({ type: step.type, name: step.name, status: 'pending' });
  let value: T;
  try {
    value = await step.create();
  } catch (e) {
    if (!(e instanceof ControlPlaneError && e.alreadyExists)) throw e;
    file.forget(step.type, step.name);
    const problem = await step.adopt();
    if (problem) {
      throw new Error(`${step.label} ${step.name} was created by someone else while setup ran; setup neither recorded nor changed it, because ${problem}.`);
    }
    return `adopted ${step.label} ${step.name} (someone else created it while setup ran; used as is, never deleted by teardown)`;
  }
  await step.created(value);
  return undefined;
}
