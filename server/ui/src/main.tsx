/** @jsxImportSource preact */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { AuditPage } from './pages/audit.tsx';
import { DevicePage } from './pages/device.tsx';
import { DevicesPage } from './pages/devices.tsx';
import { LivePage } from './pages/live.tsx';
import { OverviewPage } from './pages/overview.tsx';
import { TrustsPage } from './pages/trusts.tsx';

/*
 * The operator dashboard's page: hash routes (#/devices, #/devices/<id>, #/trusts, #/audit,
 * #/live), so every view is index.html and a reload keeps the view.
 */

const SECTIONS = [
  { href: '#/', label: 'Overview' },
  { href: '#/devices', label: 'Devices' },
  { href: '#/trusts', label: 'Trusts' },
  { href: '#/audit', label: 'Audit' },
  { href: '#/live', label: 'Live' },
];

function useHash(): string {
  const [hash, setHash] = useState(location.hash || '#/');
  useEffect(() => {
    const changed = (): void => setHash(location.hash || '#/');
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);
  return hash;
}

function View({ hash }: { hash: string }) {
  const device = /^#\/devices\/(.+)$/.exec(hash);
  if (device) return <DevicePage id={decodeURIComponent(device[1] ?? '')} />;
  if (hash === '#/devices') return <DevicesPage />;
  if (hash === '#/trusts') return <TrustsPage />;
  if (hash === '#/audit') return <AuditPage />;
  if (hash === '#/live') return <LivePage />;
  return <OverviewPage />;
}

function App() {
  const hash = useHash();
  const section = SECTIONS.slice(1).find((entry) => hash.startsWith(entry.href))?.href ?? '#/';
  useEffect(() => {
    document.title = `${SECTIONS.find((entry) => entry.href === section)?.label ?? 'Overview'} · fleetgate dashboard`;
    // Moves focus to the new view's heading, so keyboard and screen-reader users land on it.
    const heading = document.querySelector<HTMLElement>('main h2');
    heading?.setAttribute('tabindex', '-1');
    heading?.focus();
  }, [hash]);
  return (
    <>
      <header class="top">
        <h1>fleetgate</h1>
        <nav aria-label="Sections">
          {SECTIONS.map((entry) => (
            <a href={entry.href} aria-current={entry.href === section ? 'page' : undefined}>{entry.label}</a>
          ))}
        </nav>
      </header>
      <main>
        <View hash={hash} />
      </main>
    </>
  );
}

const root = document.getElementById('app');
if (root) {
  root.textContent = '';
  render(<App />, root);
}
