/** @jsxImportSource preact */
import { useEffect, useState } from 'preact/hooks';
import type { TrustView } from '../../../src/admin/wire.ts';
import { api } from '../api.ts';
import { ConfirmDialog, ErrorBox } from '../components/common.tsx';
import { shortTime } from '../format.ts';

/** Trusted manufacturer CAs: list, add (PEM upload or paste, model, namespace or allow-list), untrust. */
export function TrustsPage() {
  const [trusts, setTrusts] = useState<readonly TrustView[]>();
  const [error, setError] = useState<unknown>();
  const [notice, setNotice] = useState<string>();
  const [form, setForm] = useState({ name: '', model: '', caPem: '', namespace: '', allowList: '' });
  const [untrusting, setUntrusting] = useState<string>();

  const load = (): void => {
    api.trusts().then((answer) => setTrusts(answer.trusts), setError);
  };
  useEffect(load, []);

  const field = (name: keyof typeof form) => (event: { currentTarget: HTMLInputElement | HTMLTextAreaElement }) => setForm({ ...form, [name]: event.currentTarget.value });
  const readPem = async (event: { currentTarget: HTMLInputElement }): Promise<void> => {
    const file = event.currentTarget.files?.[0];
    if (file) setForm({ ...form, caPem: await file.text() });
  };
  const add = async (event: Event): Promise<void> => {
    event.preventDefault();
    const formElement = event.currentTarget as HTMLFormElement;
    setError(undefined);
    setNotice(undefined);
    const allowList = form.allowList.split(/[\s,]+/).filter(Boolean);
    try {
      const answer = await api.addTrust(form.name.trim(), {
        model: form.model.trim(),
        caPem: form.caPem,
        ...(form.namespace.trim() ? { namespace: form.namespace.trim() } : {}),
        ...(allowList.length > 0 ? { allowList } : {}),
      });
      setNotice(answer.changed ? `Trusted ${answer.trust.name} (${answer.trust.fingerprint}).` : `${answer.trust.name} was already trusted with these settings.`);
      setForm({ name: '', model: '', caPem: '', namespace: '', allowList: '' });
      // Clears the file field too (the text fields follow the state).
      formElement.reset();
      load();
    } catch (failure) {
      setError(failure);
    }
  };
  const untrust = async (name: string): Promise<void> => {
    setUntrusting(undefined);
    setError(undefined);
    try {
      await api.untrust(name);
      setNotice(`${name} is no longer trusted.`);
      load();
    } catch (failure) {
      setError(failure);
    }
  };

  return (
    <section aria-labelledby="trusts-title">
      <h2 id="trusts-title">Manufacturer trusts</h2>
      {notice ? <p class="notice" role="status">{notice}</p> : null}
      <ErrorBox error={error} />
      {trusts === undefined ? <p>Loading…</p> : trusts.length === 0 ? <p class="muted">No manufacturer CA is trusted.</p> : (
        <div class="table-wrap">
          <table data-testid="trusts">
            <thead><tr><th scope="col">Name</th><th scope="col">Model</th><th scope="col">Scope</th><th scope="col" class="hide-narrow">Fingerprint</th><th scope="col" class="hide-narrow">Added</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
            <tbody>
              {trusts.map((trust) => (
                <tr>
                  <td>{trust.name}</td>
                  <td>{trust.model}</td>
                  <td>{trust.namespace !== null ? `ids starting ${trust.namespace}` : ''}{trust.allowListSize !== null ? `${trust.namespace !== null ? ', ' : ''}allow-list of ${trust.allowListSize}` : ''}</td>
                  <td class="hide-narrow wrap">{trust.fingerprint}</td>
                  <td class="hide-narrow">{shortTime(trust.createdAt)} by {trust.actor}</td>
                  <td><button type="button" class="danger" onClick={() => setUntrusting(trust.name)}>Untrust…</button></td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {untrusting ? (
        <ConfirmDialog title={`Untrust ${untrusting}?`} confirmLabel={`Untrust ${untrusting}`} danger onConfirm={() => void untrust(untrusting)} onCancel={() => setUntrusting(undefined)}>
          <p>Devices whose bootstrap certificate chains to this CA can no longer enroll. Devices already enrolled keep working.</p>
        </ConfirmDialog>
      ) : null}
      <h3>Trust a manufacturer CA</h3>
      <form class="card" data-testid="trust-form" onSubmit={(event) => void add(event)}>
        <div class="filters">
          <label>Name<input name="name" required value={form.name} onInput={field('name')} /></label>
          <label>Model<input name="model" required value={form.model} onInput={field('model')} /></label>
          <label>Id namespace (prefix)<input name="namespace" placeholder="acme-" title="the start of every device id this CA may enroll, ending with '.', '_' or '-'" value={form.namespace} onInput={field('namespace')} /></label>
        </div>
        <label>CA certificate (PEM file)<input name="caFile" type="file" accept=".pem,.crt,.cer" onChange={(event) => void readPem(event)} /></label>
        <label>or paste the PEM<textarea name="caPem" required value={form.caPem} onInput={field('caPem')} /></label>
        <label>Allow-list (device ids, one per line; optional)<textarea name="allowList" value={form.allowList} onInput={field('allowList')} /></label>
        <div class="actions"><button type="submit" class="primary">Trust</button></div>
      </form>
    </section>
  );
}
