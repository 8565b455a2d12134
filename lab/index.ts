export { addContainer, killHost, labDown, labNetns, labStatus, labUp, loadLab } from './lab.js';
export { runLabServices } from './services.js';
