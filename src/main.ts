/**
 * Entry point: load configuration, start the batcher (supervisor and shards),
 * build the app, listen, and wire the signals. Exit codes: 0 clean shutdown,
 * 1 shutdown timeout or failure, 2 bad configuration.
 */
import { pino } from 'pino';
import { Batcher } from './actors/batcher.ts';
import { ConfigError, helpText, loadConfig, type Config } from './config.ts';
import { DownstreamClient } from './downstream/client.ts';
import { Admission } from './http/admission.ts';
import { buildApp } from './http/app.ts';
import { createReplySink } from './http/reply-sink.ts';
import { Lifecycle } from './lifecycle.ts';
import { createShutdown } from './shutdown.ts';
import { Telemetry } from './telemetry/telemetry.ts';

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(helpText());
  process.exit(0);
}

let config: Config;
try {
  config = loadConfig(process.env);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`configuration error: ${error.message}\nRun with --help for every variable.\n`);
  process.exit(2);
}

const log = pino({ level: config.logLevel });
// Telemetry first: the SDK reads the OTEL_* variables itself.
const telemetry = await Telemetry.start({ env: process.env, log, batchMaxSize: config.batchMaxSize });
const lifecycle = new Lifecycle();
const downstream = new DownstreamClient(config);
const sink = createReplySink(lifecycle, telemetry.metrics, { serverTiming: config.serverTiming });
const batcher = new Batcher({
  config,
  downstream,
  sink,
  observer: telemetry,
  onFatal: (error) => {
    log.fatal({ err: error }, 'batcher failed: every held request was answered 500; exiting');
    setTimeout(() => process.exit(1), 500);
  },
}).start();
telemetry.observeShards(() => batcher.stats());
const admission = new Admission({ maxLoopDelayMs: config.admissionMaxLoopDelayMs, sampleMs: config.admissionSampleMs }).start();
telemetry.observeAdmission(admission);
telemetry.observeLifecycle(() => lifecycle.phase);
const app = buildApp({ config, batcher, lifecycle, telemetry, log, admission });

const onSignal = createShutdown({
  config,
  app,
  batcher,
  downstream,
  lifecycle,
  flush: () => telemetry.flush(),
  refused: () => telemetry.metrics.requestCount('draining'),
  exit: (code) => process.exit(code),
});
process.on('SIGTERM', onSignal);
process.on('SIGINT', onSignal);
process.on('unhandledRejection', (reason) => app.log.error({ err: reason }, 'unhandled rejection'));

try {
  await app.listen({ port: config.port, host: config.host });
} catch (error) {
  app.log.fatal({ err: error }, 'cannot listen');
  process.exit(1);
}
// A signal may have come while the listener was starting: then stay not-ready.
if (lifecycle.phase === 'starting') lifecycle.phase = 'ready';
const address = app.server.address();
app.log.info(
  {
    port: typeof address === 'object' && address !== null ? address.port : config.port,
    config: { ...config, downstreamUrl: config.downstreamUrl.href },
  },
  'sidecar ready',
);
