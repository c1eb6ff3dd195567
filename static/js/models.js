// Model selector in the header, plus the model's loading state.

import * as api from './api.js';

export function createModelSelect({ onSelect, toast }) {
  const select = document.getElementById('model-select');
  const status = document.getElementById('model-status');
  let current = null;
  let models = [];

  function setStatus(model) {
    const text = status.querySelector('span');
    if (!model) { status.className = 'pill'; text.textContent = 'model: –'; return; }
    status.className = `pill ${model.ready ? 'pill-on' : 'pill-busy'}`;
    text.textContent = model.ready ? `${model.name} ready` : `loading ${model.name || 'model'}…`;
    status.title = model.ready ? `${model.labels?.length ?? '?'} labels` : 'The model is loading';
  }

  function fill() {
    select.replaceChildren(...models.map((m) => {
      const opt = new Option(m.name, m.name, false, m.name === current);
      opt.title = m.description || '';
      return opt;
    }));
    if (current && !models.some((m) => m.name === current)) select.append(new Option(current, current, false, true));
  }

  async function load() {
    try {
      const res = await api.getModels();
      models = res.models || [];
      current = current || res.current;
      fill();
    } catch (err) {
      toast.show(err.message, { level: 'error', title: 'Models' });
    }
  }

  select.addEventListener('change', async () => {
    const name = select.value;
    const ok = await onSelect(name);
    if (!ok) select.value = current || '';
  });

  return {
    load,
    model(model) {
      setStatus(model);
      if (model && model.name && model.name !== current) {
        current = model.name;
        fill();
      }
    },
  };
}
