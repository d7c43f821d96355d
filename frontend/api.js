// Requests to the plugin's routes (http_api.md). URLs are relative ('./averages?...'), resolved
// against the iframe's <base href="plugin/batchavg/">, so --path_prefix and experiment URLs work.

import {saveBlob} from './dom.js';

/** A request the server answered with an error (message from its JSON body) or that failed. */
export class ApiError extends Error {
  constructor(message, status = 0, body = null) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/**
 * For an answer about a window longer than its series (a 200 with `average` or `rolling` null,
 * http_api.md): {window, length, unit, message}; else null.
 */
export function windowTooLong(data) {
  return data && data.reason === 'window_longer_than_series' ? data : null;
}

/** Thrown for a response that a newer request made obsolete: callers ignore it. */
export class Stale extends Error {}

function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== null && value !== undefined && value !== '') q.set(key, String(value));
  }
  return q.toString();
}

async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`;
  let body = null;
  try {
    body = await response.json();
    if (body && body.error) message = body.error;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(message, response.status, body);
}

/** GETs a route's JSON; rejects with ApiError (or AbortError when `signal` aborts). */
export async function getJSON(route, params, signal) {
  const qs = query(params);
  let response;
  try {
    response = await fetch(`./${route}${qs ? `?${qs}` : ''}`, {signal, credentials: 'same-origin'});
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(`cannot reach TensorBoard (${error.message})`);
  }
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

/** {data} or {error} (ApiError), so that one failed request leaves the others usable. */
export async function settle(promise) {
  try {
    return {data: await promise};
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    return {error};
  }
}

export const api = {
  runs: (signal) => getJSON('runs', null, signal),

  /** TensorBoard's own run order (its /data/runs order), for the run colours. */
  runOrder: (signal) => getJSON('run_order', null, signal),

  /** averaging: {method, window, weight, align, edges, unit, band}; range: {start, end}. */
  averages: ({run, tag, averaging, range, maxPoints}, signal) =>
    getJSON('averages', {run, tag, ...averaging, ...range, max_points: maxPoints}, signal),

  correlation: ({run, x, y, window, maxLag, range, maxPoints}, signal) =>
    getJSON('correlation', {run, x, y, window, max_lag: maxLag, ...range, max_points: maxPoints}, signal),

  /** The mean across the runs matching `runs` (a regex) of each run's average: {tag} or {role}; band across runs. */
  group: ({runs, tag, role, averaging, band, range, maxPoints}, signal) =>
    getJSON('group', {runs, tag, role, ...averaging, band, ...range, max_points: maxPoints}, signal),

  /** tags: {loss, grad_norm, learning_rate} (null: the run's detected tag). */
  diagnostics: ({run, tags}, signal) => getJSON('diagnostics', {run, ...tags}, signal),

  /** Saves the full-resolution CSV of `export` under the server's file name. */
  async exportCSV({run, tag, averaging}) {
    const response = await fetch(`./export?${query({run, tag, ...averaging, format: 'csv'})}`, {credentials: 'same-origin'});
    if (!response.ok) throw await errorOf(response);
    const match = /filename="([^"]+)"/.exec(response.headers.get('Content-Disposition') || '');
    saveBlob(await response.blob(), match ? match[1] : 'export.csv');
  },
};

/**
 * One task at a time: starting a task aborts the previous one, and a result that arrives after
 * a newer task started is discarded (the promise rejects with Stale).
 */
export class Latest {
  constructor() {
    this.controller = null;
    this.generation = 0;
  }

  async run(task) {
    if (this.controller) this.controller.abort();
    const controller = new AbortController();
    this.controller = controller;
    const generation = ++this.generation;
    try {
      const result = await task(controller.signal);
      if (generation !== this.generation) throw new Stale();
      return result;
    } catch (error) {
      if (generation !== this.generation || error.name === 'AbortError') throw new Stale();
      throw error;
    }
  }
}
