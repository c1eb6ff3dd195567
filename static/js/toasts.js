// Notices from the server and failed acks, as stacked toasts.

const MAX_TOASTS = 5;

export function createToasts(root) {
  function show(message, { level = 'info', title = null, timeout = null } = {}) {
    const el = document.createElement('div');
    el.className = `toast ${level}`;
    el.setAttribute('role', level === 'error' ? 'alert' : 'status');
    const head = document.createElement('div');
    head.className = 'title';
    head.textContent = title || level;
    const body = document.createElement('div');
    body.className = 'message';
    body.textContent = message;
    const close = document.createElement('button');
    close.type = 'button';
    close.textContent = '×';
    close.title = 'Dismiss';
    close.onclick = () => el.remove();
    el.append(head, body, close);
    root.append(el);
    while (root.children.length > MAX_TOASTS) root.firstElementChild.remove();
    const ms = timeout ?? (level === 'error' ? 12000 : 6000);
    setTimeout(() => el.remove(), ms);
  }
  return {
    show,
    notice(p) { show(p.message, { level: p.level || 'info', title: p.source ? `${p.level} · ${p.source}` : p.level }); },
  };
}
