// Module resolution hooks for testing.js's importWorkflow: a workflow
// module's `./wf-guest.js` (which componentize.mjs puts beside it when it
// builds) resolves to this folder's SDK when no such file is there.

const sdk = new URL('./wf-guest.js', import.meta.url).href;

export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (e) {
    if (/(^|\/)wf-guest\.js$/.test(specifier) && e?.code === 'ERR_MODULE_NOT_FOUND') {
      return { url: sdk, shortCircuit: true };
    }
    throw e;
  }
}
