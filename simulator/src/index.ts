/** @fleetgate/simulator: run simulated fleets through the real lifecycle (also as a library). */
export { simulate, summaryText, type SimulationOutcome } from './simulate.ts';
export { parseSimArgs, countsFor, parseMix, SCENARIOS, type SimOptions, type Scenario } from './options.ts';
export { Progress } from './progress.ts';
export { DEFAULT_TRAFFIC, payloadSeq, type TrafficSettings, type DeviceProfile } from './profiles.ts';
export type { AckExport } from './acks.ts';
export type { SimulationReport } from './report/types.ts';
export { renderHtml, reportCharts } from './report/html.ts';
