import { DEMO_USERS } from '../../seeds/01_demo_users';

export interface SimUser {
  id: string;
  name: string;
  /** Relative activity: how often this user plays compared with the others. */
  weight: number;
}

const ADJECTIVES = [
  'Swift',
  'Quiet',
  'Brave',
  'Lucky',
  'Clever',
  'Misty',
  'Rapid',
  'Sunny',
  'Bold',
  'Nimble',
];
const ANIMALS = ['Otter', 'Falcon', 'Badger', 'Lynx', 'Heron', 'Fox', 'Panda', 'Raven', 'Tiger', 'Koala'];

/**
 * The seeded players first (so the board that `npm run dev` shows starts moving), then generated ones with
 * stable ids (`sim-001`, ...) so repeated runs reuse them. Activity has a long tail, as on a real site: a few
 * players are busy, most play now and then; who is busy changes from run to run.
 */
export function simUsers(count: number, random: () => number = Math.random): SimUser[] {
  const seeded = DEMO_USERS.filter((u) => u.role === 'player').map((u) => ({
    id: u.id,
    name: u.displayName,
  }));
  const users = seeded.slice(0, count);
  for (let n = 0; users.length < count; n++) {
    const name = `${ADJECTIVES[n % ADJECTIVES.length]} ${ANIMALS[Math.floor(n / ADJECTIVES.length) % ANIMALS.length]}`;
    users.push({ id: `sim-${String(n + 1).padStart(3, '0')}`, name });
  }
  const ranks = users.map((_, i) => i + 1);
  for (let i = ranks.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [ranks[i], ranks[j]] = [ranks[j], ranks[i]];
  }
  return users.map((u, i) => ({ ...u, weight: 1 / ranks[i] ** 0.9 }));
}

/** Points for one action: mostly small, now and then a big one. */
const POINTS: Array<[points: number, probability: number]> = [
  [1, 0.25],
  [5, 0.3],
  [10, 0.25],
  [25, 0.12],
  [50, 0.06],
  [100, 0.02],
];

export function actionPoints(random: () => number = Math.random): number {
  let u = random();
  for (const [points, probability] of POINTS) {
    if ((u -= probability) < 0) return points;
  }
  return POINTS[0][0];
}

/** Picks a user with probability proportional to their weight. */
export function weightedPicker(users: SimUser[], random: () => number = Math.random): () => SimUser {
  const total = users.reduce((sum, u) => sum + u.weight, 0);
  return () => {
    let u = random() * total;
    for (const user of users) if ((u -= user.weight) < 0) return user;
    return users[users.length - 1];
  };
}

/** A burst of rapid actions (clicks in a game round): 1 half the time, else 2-6; 2.5 on average. */
export function burstLength(random: () => number = Math.random): number {
  return random() < 0.5 ? 1 : 2 + Math.floor(random() * 5);
}
export const MEAN_BURST = 2.5;

/** Exponentially distributed gaps: Poisson arrivals at `perSecond`. */
export function poissonGapMs(perSecond: number, random: () => number = Math.random): number {
  return (-Math.log(1 - random()) / perSecond) * 1000;
}
