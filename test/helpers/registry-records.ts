import type { CertificateRecord, DeviceRecord, IssuanceCommit } from '../../server/src/registry/types.ts';

/** The time every record made here carries. */
export const RECORD_TIME = '2026-11-23T10:00:00.000Z';

/** An enrolled factory device whose current certificate is `serial`. */
export function deviceRecord(id: string, serial: string): DeviceRecord {
  return {
    id,
    model: 'thermostat',
    state: 'enrolled',
    certSerial: serial,
    certNotAfter: '2026-12-23T10:00:00.000Z',
    bootstrap: { key: `factory:${id}`, trust: 'fleetgate-factory', serial: `b-${id}` },
    enrollments: 1,
    renewals: 0,
    resetPending: false,
    createdAt: RECORD_TIME,
    updatedAt: RECORD_TIME,
  };
}

/** A valid operational certificate of a device (placeholder DER). */
export function certificateRecord(deviceId: string, serial: string): CertificateRecord {
  return { serial, deviceId, kind: 'operational', notBefore: RECORD_TIME, notAfter: RECORD_TIME, issuedAt: RECORD_TIME, status: 'valid', der: 'AA==' };
}

/** The registry commit of a first enrollment (or, with `currentSerial`, of one over an existing line). */
export function enrollmentCommit(id: string, serial: string, currentSerial?: string): IssuanceCommit {
  return {
    kind: 'enroll',
    device: deviceRecord(id, serial),
    certificate: certificateRecord(id, serial),
    expect: { currentSerial },
    audit: { type: 'enrolled', deviceId: id, serial, actor: `device:${id}` },
  };
}
