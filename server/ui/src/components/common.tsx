/** @jsxImportSource preact */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import { ApiError } from '../api.ts';
import { messageOf } from '../format.ts';

/** A device state as a coloured badge (the word is the information; the colour only repeats it). */
export function StateBadge({ state }: { state: string }) {
  return <span class={`state state-${state}`}>{state}</span>;
}

/** A failure, with the refusal code when there is one. */
export function ErrorBox({ error }: { error: unknown }) {
  if (error === undefined || error === null) return null;
  return (
    <p class="error" role="alert">
      {error instanceof ApiError ? `${error.code}: ${error.message}` : messageOf(error)}
    </p>
  );
}

/**
 * A modal confirmation (the native <dialog>: focus moves into it, Escape cancels). `title` names
 * what will change; `children` are extra fields (a reason); `onConfirm` runs on the confirm button.
 */
export function ConfirmDialog(props: { title: string; confirmLabel: string; danger?: boolean; children?: ComponentChildren; onConfirm: () => void; onCancel: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
    return () => dialog?.close();
  }, []);
  return (
    <dialog ref={ref} aria-labelledby="confirm-title" onCancel={(event) => { event.preventDefault(); props.onCancel(); }}>
      <form method="dialog" onSubmit={(event) => { event.preventDefault(); props.onConfirm(); }}>
        <h2 id="confirm-title">{props.title}</h2>
        {props.children}
        <div class="actions">
          <button type="submit" class={props.danger ? 'danger' : 'primary'}>{props.confirmLabel}</button>
          <button type="button" onClick={props.onCancel}>Cancel</button>
        </div>
      </form>
    </dialog>
  );
}
