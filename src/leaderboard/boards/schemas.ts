import Joi from 'joi';
import { displayNameSchema } from '../../users/routes';
import { checkReset, PRESETS } from './cycles';
import type { BoardWindow } from './store';

/** Board ids and window names: the one rule, used by joi, the WebSocket protocol and the OpenAPI document. */
export const BOARD_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;
export const WINDOW_NAME_PATTERN = /^[a-z0-9_-]{1,32}$/;

export const boardIdParam = Joi.string().pattern(BOARD_ID_PATTERN, 'board id').required();
export const windowName = Joi.string().pattern(WINDOW_NAME_PATTERN, 'window name');

/** A board title follows the display-name rule (it is shown to every viewer), up to 100 characters. */
const title = displayNameSchema.label('title');

const reset = Joi.string()
  .max(100)
  .custom((value: string, helpers) => {
    const problem = checkReset(value);
    return problem ? helpers.message({ custom: `"reset" ${problem}` }) : value.trim().split(/\s+/).join(' ');
  });

/** A window as given at creation: a preset's name, or `{name, reset}` (reset a cron expression, or null). */
const windowSpec = Joi.alternatives(
  Joi.string().valid(...Object.keys(PRESETS)),
  Joi.object({ name: windowName.required(), reset: reset.allow(null).required() }).unknown(false),
).messages({
  'alternatives.match':
    '"windows" items are a preset (all, day, week, month) or an object with name and reset',
});

export interface CreateBoardBody {
  id: string;
  title: string;
  windows: BoardWindow[];
}

export function createBoardSchema(maxWindows: number): Joi.ObjectSchema<CreateBoardBody> {
  return Joi.object<CreateBoardBody>({
    id: Joi.string().pattern(BOARD_ID_PATTERN, 'board id').required(),
    title: title.required(),
    windows: Joi.array()
      .items(windowSpec)
      .min(1)
      .max(maxWindows)
      .required()
      .custom((items: Array<string | BoardWindow>, helpers) => {
        const windows = items.map((w) => (typeof w === 'string' ? { name: w, reset: PRESETS[w] } : w));
        const names = windows.map((w) => w.name);
        const twice = names.find((n, i) => names.indexOf(n) !== i);
        return twice ? helpers.message({ custom: `"windows" names the window "${twice}" twice` }) : windows;
      }),
  }).unknown(false);
}

export const patchBoardSchema = Joi.object<{ title: string }>({ title: title.required() }).unknown(false);
