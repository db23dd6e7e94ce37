/**
 * Loaded with `node --import` into every measured server process (ours and the bare SDK baseline
 * alike): answers the bench over the IPC channel with the process's own CPU time and, after a
 * forced GC (`--expose-gc`), its heap. Nothing of the server's code is changed or instrumented.
 */
const gc = (globalThis as { gc?: () => void }).gc;

if (process.send) {
  process.on('message', (message: unknown) => {
    if (message === 'cpu') {
      const { user, system } = process.cpuUsage();
      process.send!({ cpuMicros: user + system });
    } else if (message === 'heap') {
      gc?.();
      gc?.();
      process.send!({ heapBytes: process.memoryUsage().heapUsed });
    }
  });
  // The channel must not keep a stdio server alive after its client closes stdin.
  process.channel?.unref();
  // The bench gone (ended or killed): a measured server must not outlive it.
  process.on('disconnect', () => process.exit(0));
  // A server without its own SIGTERM handler would die without writing its --cpu-prof profile: end
  // it the same way, but through exit(), which writes it. A server's own handler is left alone.
  process.on('SIGTERM', () => {
    if (process.listenerCount('SIGTERM') === 1) process.exit(0);
  });
}
