import { isDeviceId, MODEL_PATTERN } from '@fleetgate/device-sdk/protocol';
import { CRL_REASONS } from '../../pki/crl.ts';
import { RegistryError } from '../../registry/errors.ts';
import type { DeviceRecord, DeviceState, RevocationReason } from '../../registry/types.ts';
import { AdminError } from '../errors.ts';
import { limitParameter, onlyFields, optionalString, readJson, sendJson } from '../http.ts';
import type { AdminContext, AdminRequest, AdminRoute } from './types.ts';

const STATES: readonly DeviceState[] = ['provisioned', 'enrolled', 'disabled', 'revoked'];
const MAX_LIST = 10_000;

function deviceId(request: AdminRequest): string {
  const id = request.params.id ?? '';
  if (!isDeviceId(id)) throw new AdminError('ADMIN_BAD_REQUEST', `"${id.slice(0, 80)}" is not a device id`);
  return id;
}

async function existingDevice(context: AdminContext, id: string): Promise<DeviceRecord> {
  const device = await context.registry.getDevice(id);
  if (!device) throw new AdminError('ADMIN_DEVICE_NOT_FOUND', `no device ${id}`);
  return device;
}

/** Registry refusals as admin errors. */
function mapRegistryError(error: unknown): never {
  if (error instanceof RegistryError && error.code === 'REGISTRY_NOT_FOUND') throw new AdminError('ADMIN_DEVICE_NOT_FOUND', error.message, { cause: error });
  if (error instanceof RegistryError && error.code === 'REGISTRY_INVALID_STATE') throw new AdminError('ADMIN_INVALID_STATE', error.message, { cause: error });
  throw error;
}

/** GET /v1/devices?state=&model=&after=&limit= */
export const listDevices: AdminRoute = {
  method: 'GET',
  path: '/v1/devices',
  query: ['state', 'model', 'after', 'limit'],
  async handle({ query, response }, context) {
    const state = query.get('state') ?? undefined;
    const model = query.get('model') ?? undefined;
    const after = query.get('after') ?? undefined;
    const limit = limitParameter(query, MAX_LIST);
    if (state !== undefined && !STATES.includes(state as DeviceState)) throw new AdminError('ADMIN_BAD_REQUEST', `state must be one of ${STATES.join(', ')}`);
    if (model !== undefined && !MODEL_PATTERN.test(model)) throw new AdminError('ADMIN_BAD_REQUEST', `"${model.slice(0, 64)}" is not a model name`);
    if (after !== undefined && !isDeviceId(after)) throw new AdminError('ADMIN_BAD_REQUEST', `after must be a device id (the "next" of the previous page)`);
    const devices = await context.registry.listDevices({ state: state as DeviceState | undefined, model, after, limit });
    sendJson(response, 200, { devices, next: devices.length === limit ? devices.at(-1)?.id : undefined });
  },
};

/** GET /v1/devices/:id — state, certificate, presence, certificates and history. */
export const showDevice: AdminRoute = {
  method: 'GET',
  path: '/v1/devices/:id',
  async handle(request, context) {
    const device = await existingDevice(context, deviceId(request));
    const [presence, certificates, history] = await Promise.all([
      context.registry.getPresence(device.id),
      context.registry.listCertificates(device.id),
      context.registry.readAudit({ deviceId: device.id }),
    ]);
    sendJson(request.response, 200, {
      device,
      presence: presence ?? null,
      connected: presence?.connected ?? false,
      certificates: certificates.map(({ der: _der, ...rest }) => rest),
      history,
    });
  },
};

function stateChange(path: string, to: DeviceState): AdminRoute {
  return {
    method: 'POST',
    path,
    async handle(request, context) {
      const id = deviceId(request);
      const body = await readJson(request.request, request.response);
      onlyFields(body, ['reason']);
      const reason = optionalString(body, 'reason');
      let revocationReason: RevocationReason | undefined;
      if (to === 'revoked') {
        const named = reason && Object.hasOwn(CRL_REASONS, reason) && reason !== 'cACompromise' ? (reason as RevocationReason) : undefined;
        revocationReason = named ?? 'unspecified';
      }
      const device = await context.registry
        .changeState({ deviceId: id, to, reason, actor: `operator:${request.operator}`, revocationReason })
        .catch(mapRegistryError);
      context.logger.info({ deviceId: id, to, operator: request.operator, reason }, 'device state changed');
      // The answer comes once the published CRL lists the device's certificates: an operator (or
      // a script) that fetches the CRL right after a revocation gets one with it.
      if (to === 'revoked') await context.crl.refresh();
      sendJson(request.response, 200, { device });
    },
  };
}

/** POST /v1/devices/:id/revoke { reason? } — final; every certificate of the device is revoked. */
export const revokeDevice = stateChange('/v1/devices/:id/revoke', 'revoked');
/** POST /v1/devices/:id/disable { reason? } */
export const disableDevice = stateChange('/v1/devices/:id/disable', 'disabled');
/** POST /v1/devices/:id/enable */
export const enableDevice = stateChange('/v1/devices/:id/enable', 'enrolled');

/** POST /v1/devices/:id/reset — allows one more bootstrap enrollment (and lifts a revocation). */
export const resetDevice: AdminRoute = {
  method: 'POST',
  path: '/v1/devices/:id/reset',
  async handle(request, context) {
    const id = deviceId(request);
    onlyFields(await readJson(request.request, request.response), []);
    await existingDevice(context, id);
    const device = await context.registry.resetDevice(id, `operator:${request.operator}`).catch(mapRegistryError);
    sendJson(request.response, 200, { device });
  },
};
